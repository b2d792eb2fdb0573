#!/usr/bin/env bash
# The production topology natively on loopback, no container engine: HAProxy (both modes of
# deploy/haproxy) in front of 3 API instances (HYDRANT_JOBS_ENABLED=false) and 2 `hydrant
# worker` processes, over a private PostgreSQL, Redis and SMTP sink (scripts/services.sh).
# Every port is picked free; all state is under DIR.
#
#   cluster.sh start DIR            start everything (the 3 instances at once: each runs
#                                   `migrate up`, then serves), wait until HAProxy routes to all
#   cluster.sh stop DIR             stop everything (SIGTERM: instances drain), safe when stopped
#   cluster.sh status DIR           what runs, and HAProxy's view of each instance
#   cluster.sh restart DIR apiN     the drain procedure for one instance: SIGTERM, wait for its
#                                   exit, start it again, wait until HAProxy routes to it
#   cluster.sh kill DIR NAME        SIGKILL apiN or workerN (tests)
#   cluster.sh start-one DIR NAME   start apiN or workerN again (after kill)
#
# DIR/cluster.env holds the URLs and ports (source it). The HYDRANT_* variables of the start
# are kept in DIR/fleet.env for every process of the fleet, restarts included, so a test can
# change a setting for the whole fleet. HYDRANT_BIN picks the binary (default build/hydrant).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${HYDRANT_BIN:-$root/build/hydrant}
APIS=(api1 api2 api3)
WORKERS=(worker1 worker2)

die() { echo "cluster: $*" >&2; exit 1; }

# N free loopback ports, all bound at once so that they differ.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_for() { # tries (of 0.1 s), command...
  local tries=$1; shift
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ready() { # plain port
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/health/ready")" = 200 ]
}

# HAProxy's state of server NAME in backend BACKEND (UP, DOWN, MAINT, ...), from the stats CSV.
server_state() { # backend name
  curl -s --max-time 2 "http://127.0.0.1:$HYD_STATS_PORT/stats;csv" |
    awk -F, -v b="$1" -v s="$2" '$1 == b && $2 == s { print $18 }'
}

routed() { # name: UP in both backends
  [ "$(server_state api "$1")" = UP ] && [ "$(server_state api_tls "$1")" = UP ]
}

write_env() {
  local dir=$1 pg redis smtp
  pg=$(cat "$dir/services/pg/port"); redis=$(cat "$dir/services/redis/port"); smtp=$(cat "$dir/services/smtp/port")
  read -r https passthrough stats a1h a1t a2h a2t a3h a3t <<<"$(free_ports 9)"
  cat >"$dir/cluster.env" <<EOF
HYD_BIND=127.0.0.1
HYD_HTTPS_PORT=$https
HYD_PASSTHROUGH_PORT=$passthrough
HYD_STATS_PORT=$stats
HYD_CERT=$dir/tls/combined.pem
HYD_ADMIN_SOCKET=$dir/haproxy/admin.sock
HYD_API1_HOST=127.0.0.1
HYD_API1_HTTP=$a1h
HYD_API1_TLS=$a1t
HYD_API2_HOST=127.0.0.1
HYD_API2_HTTP=$a2h
HYD_API2_TLS=$a2t
HYD_API3_HOST=127.0.0.1
HYD_API3_HTTP=$a3h
HYD_API3_TLS=$a3t
CLUSTER_DATABASE_URL=postgresql://hydrant@127.0.0.1:$pg/hydrant
CLUSTER_REDIS_URL=redis://127.0.0.1:$redis/0
CLUSTER_SMTP_URL=smtp://127.0.0.1:$smtp
CLUSTER_HTTPS=https://127.0.0.1:$https
CLUSTER_PASSTHROUGH=https://127.0.0.1:$passthrough
EOF
}

load_env() {
  [ -f "$1/cluster.env" ] || die "no cluster in $1 (cluster.sh start $1)"
  set -a; . "$1/cluster.env"; set +a
}

# The caller's HYDRANT_* settings at start, so that restarts later get the same.
save_fleet_env() {
  local v
  for v in $(compgen -e | grep '^HYDRANT_' || true); do printf 'export %s=%q\n' "$v" "${!v}"; done >"$1/fleet.env"
}

# The settings every process of the fleet shares; the start's HYDRANT_* win.
fleet_env() {
  local dir=$1
  . "$dir/fleet.env"
  export HYDRANT_CONFIG=${HYDRANT_CONFIG:-$root/h2o.conf}
  export HYDRANT_DATABASE_URL=$CLUSTER_DATABASE_URL HYDRANT_REDIS_URL=$CLUSTER_REDIS_URL
  export HYDRANT_SMTP_URL=$CLUSTER_SMTP_URL
  export HYDRANT_JWT_SECRET=${HYDRANT_JWT_SECRET:-$(cat "$dir/jwt-secret")}
  export HYDRANT_TLS_CERT=$dir/tls/cert.pem HYDRANT_TLS_KEY=$dir/tls/key.pem
  export HYDRANT_UPLOAD_DIR=$dir/uploads # shared by every instance and worker
  export HYDRANT_OPENAPI_FILE=$root/docs/openapi.yaml HYDRANT_MIGRATIONS_DIR=$root/migrations
  export HYDRANT_SMTP_TEMPLATES_DIR=$root/templates/email
  export HYDRANT_THREADS=${HYDRANT_THREADS:-1}
  export HYDRANT_TRUSTED_PROXIES=${HYDRANT_TRUSTED_PROXIES:-127.0.0.1}
  export HYDRANT_DRAIN_DELAY_MS=${HYDRANT_DRAIN_DELAY_MS:-3000}
}

start_one() { # dir name
  local dir=$1 name=$2 n http tls
  mkdir -p "$dir/$name"
  fleet_env "$dir"
  case "$name" in
    api[1-3])
      n=${name#api}
      http=$(eval echo "\$HYD_API${n}_HTTP"); tls=$(eval echo "\$HYD_API${n}_TLS")
      # Every instance migrates before serving, as a container would: the advisory lock of
      # `migrate up` lets one apply the migrations while the others wait.
      HYDRANT_LISTEN_HTTP=127.0.0.1:$http HYDRANT_LISTEN_TLS=127.0.0.1:$tls HYDRANT_JOBS_ENABLED=false \
        HYDRANT_ACCESS_LOG=$dir/$name/access.log \
        nohup bash -c 'cd "$1" && "$2" migrate up >>"$3/migrate.log" 2>&1 && exec "$2" serve' _ \
        "$root" "$bin" "$dir/$name" >>"$dir/$name/stderr.log" 2>&1 &
      ;;
    worker[1-2])
      HYDRANT_JOBS_ENABLED=true nohup bash -c 'cd "$1" && "$2" migrate up >>"$3/migrate.log" 2>&1 && exec "$2" worker' _ \
        "$root" "$bin" "$dir/$name" >>"$dir/$name/stderr.log" 2>&1 &
      ;;
    *) die "unknown process $name (api1..3, worker1..2)" ;;
  esac
  echo $! >"$dir/$name/pid"
}

wait_ready() { # dir name
  local n=${2#api} port
  port=$(eval echo "\$HYD_API${n}_HTTP")
  wait_for 300 ready "$port" || { tail -n 20 "$1/$2/stderr.log" >&2; die "$2 is not ready"; }
}

stop_one() { # dir name: SIGTERM, then wait (bounded by the drain) for the exit
  local pidfile=$1/$2/pid pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  wait_for 600 bash -c "! kill -0 $pid" || { kill -KILL "$pid" 2>/dev/null; echo "cluster: $2 killed after 60 s" >&2; }
  rm -f "$pidfile"
}

start_haproxy() {
  local dir=$1
  mkdir -p "$dir/haproxy"
  haproxy -c -q -f "$root/deploy/haproxy/common.cfg" -f "$root/deploy/haproxy/terminate.cfg" \
    -f "$root/deploy/haproxy/passthrough.cfg" || die "haproxy: configuration rejected"
  nohup haproxy -db -f "$root/deploy/haproxy/common.cfg" -f "$root/deploy/haproxy/terminate.cfg" \
    -f "$root/deploy/haproxy/passthrough.cfg" >>"$dir/haproxy/log" 2>&1 &
  echo $! >"$dir/haproxy/pid"
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: cluster.sh start|stop|status DIR | restart|kill|start-one DIR NAME"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$cmd" in
  start)
    command -v haproxy >/dev/null || bash "$here/deps.sh" cluster
    [ -x "$bin" ] || die "no $bin: build first (make build)"
    if [ -f "$dir/haproxy/pid" ] && alive "$dir/haproxy/pid"; then die "already running in $dir"; fi
    bash "$here/services.sh" start "$dir/services" 0 0 0 >/dev/null
    bash "$here/dev-cert.sh" "$dir/tls" >/dev/null
    cat "$dir/tls/cert.pem" "$dir/tls/key.pem" >"$dir/tls/combined.pem"
    chmod 600 "$dir/tls/combined.pem"
    bash "$here/dev-secret.sh" "$dir/jwt-secret" >/dev/null
    mkdir -p "$dir/uploads"
    write_env "$dir"
    save_fleet_env "$dir"
    load_env "$dir"
    for p in "${APIS[@]}" "${WORKERS[@]}"; do start_one "$dir" "$p"; done
    for p in "${APIS[@]}"; do wait_ready "$dir" "$p"; done
    start_haproxy "$dir"
    for p in "${APIS[@]}"; do wait_for 300 routed "$p" || die "haproxy does not route to $p (see $dir/haproxy/log)"; done
    echo "cluster: HAProxy TLS-terminating $CLUSTER_HTTPS, pass-through $CLUSTER_PASSTHROUGH," \
      "stats http://127.0.0.1:$HYD_STATS_PORT/stats; 3 instances, 2 workers (state in $dir)"
    ;;
  stop)
    if [ -f "$dir/cluster.env" ]; then
      [ -f "$dir/haproxy/pid" ] && alive "$dir/haproxy/pid" && kill -TERM "$(cat "$dir/haproxy/pid")"
      rm -f "$dir/haproxy/pid"
      for p in "${APIS[@]}" "${WORKERS[@]}"; do
        [ -f "$dir/$p/pid" ] && alive "$dir/$p/pid" && kill -TERM "$(cat "$dir/$p/pid")"
      done
      for p in "${APIS[@]}" "${WORKERS[@]}"; do stop_one "$dir" "$p"; done
    fi
    bash "$here/services.sh" stop "$dir/services"
    ;;
  status)
    load_env "$dir"
    for p in haproxy "${APIS[@]}" "${WORKERS[@]}"; do
      if alive "$dir/$p/pid"; then echo "$p: running (pid $(cat "$dir/$p/pid"))"; else echo "$p: stopped"; fi
    done
    if alive "$dir/haproxy/pid"; then
      for p in "${APIS[@]}"; do
        echo "haproxy: $p $(server_state api "$p") (terminating), $(server_state api_tls "$p") (pass-through)"
      done
    fi
    bash "$here/services.sh" status "$dir/services"
    ;;
  restart)
    load_env "$dir"
    name=${3:?usage: cluster.sh restart DIR apiN}
    stop_one "$dir" "$name"
    start_one "$dir" "$name"
    wait_ready "$dir" "$name"
    wait_for 300 routed "$name" || die "haproxy does not route to $name again"
    ;;
  kill)
    name=${3:?usage: cluster.sh kill DIR NAME}
    alive "$dir/$name/pid" && kill -KILL "$(cat "$dir/$name/pid")"
    rm -f "$dir/$name/pid"
    ;;
  start-one)
    load_env "$dir"
    name=${3:?usage: cluster.sh start-one DIR NAME}
    start_one "$dir" "$name"
    case "$name" in api*) wait_ready "$dir" "$name"; wait_for 300 routed "$name" || die "not routed: $name" ;; esac
    ;;
  *) die "unknown command $cmd" ;;
esac
