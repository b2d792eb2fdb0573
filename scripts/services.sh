#!/usr/bin/env bash
# Private PostgreSQL, Redis and SMTP sink for development and tests, on loopback only,
# with all their state under one directory.
#
#   services.sh start DIR PG_PORT REDIS_PORT SMTP_PORT   start all three (idempotent); a port
#                                                        of 0 means a free one (the one of the
#                                                        last start when DIR has it), written
#                                                        to DIR/{pg,redis,smtp}/port
#   services.sh stop DIR                                 stop all three (safe when stopped)
#   services.sh status DIR
#   services.sh pg-stop|pg-start|redis-stop|redis-start DIR   used by fault tests
set -euo pipefail

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "services: $*" >&2; exit 1; }

# PostgreSQL refuses to run as root: run it as the postgres system user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Where PostgreSQL keeps its files (data, log, socket): DIR/pg, or, when run as root and the
# postgres user cannot traverse DIR (a checkout under root's 0700 home), a private directory
# the postgres user owns under /var/tmp, recorded in DIR/pg/home for every later command.
# DIR/pg/port stays in DIR either way.
pg_home() {
  local dir=$1 home
  mkdir -p "$dir/pg"
  if [ -f "$dir/pg/home" ]; then cat "$dir/pg/home"; return; fi
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$dir/pg"; then echo "$dir/pg"; return; fi
  home=$(mktemp -d /var/tmp/hydrant-pg.XXXXXX)
  chown postgres:postgres "$home"
  echo "$home" >"$dir/pg/home"
  echo "$home"
}

pg_start() {
  local dir=$1 port=$2 home
  home=$(pg_home "$dir")
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$home"
  if [ ! -f "$home/data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$home/data" -A trust -U hydrant -E UTF8 --locale=C.UTF-8 >"$dir/pg/initdb.log" 2>&1 \
      || { cat "$dir/pg/initdb.log" >&2; die "initdb failed"; }
  fi
  echo "$port" >"$dir/pg/port"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$home/data" status >/dev/null 2>&1; then
    rm -f "$home/data/postmaster.pid"
    as_pg "$PG_BIN/pg_ctl" -D "$home/data" -l "$home/log" -w -t 30 start \
      -o "-p $port -k $home -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" >/dev/null \
      || { tail -n 20 "$home/log" >&2; die "postgres did not start"; }
  fi
  wait_for postgres "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -U hydrant || die "postgres does not answer"
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U hydrant -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname='hydrant'" | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U hydrant hydrant
  fi
}

pg_stop() {
  local dir=$1 home
  home=$(pg_home "$dir")
  [ -f "$home/data/PG_VERSION" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null 2>&1 || true
}

redis_start() {
  local dir=$1 port=$2
  mkdir -p "$dir/redis"
  echo "$port" >"$dir/redis/port"
  if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/log" --dir "$dir/redis" >/dev/null
  fi
  wait_for redis redis-cli -h 127.0.0.1 -p "$port" ping || { tail -n 20 "$dir/redis/log" >&2; die "redis did not start"; }
}

redis_stop() {
  local dir=$1
  [ -f "$dir/redis/port" ] || return 0
  redis-cli -h 127.0.0.1 -p "$(cat "$dir/redis/port")" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do
    [ -f "$dir/redis/redis.pid" ] && kill -0 "$(cat "$dir/redis/redis.pid")" 2>/dev/null || return 0
    sleep 0.1
  done
}

smtp_start() {
  local dir=$1 port=$2
  mkdir -p "$dir/smtp/mail"
  echo "$port" >"$dir/smtp/port"
  if [ -f "$dir/smtp/pid" ] && kill -0 "$(cat "$dir/smtp/pid")" 2>/dev/null; then return 0; fi
  nohup /usr/bin/python3 "$here/smtp_sink.py" --port "$port" --dir "$dir/smtp/mail" >"$dir/smtp/log" 2>&1 &
  echo $! >"$dir/smtp/pid"
  wait_for smtp bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || { cat "$dir/smtp/log" >&2; die "smtp sink did not start"; }
}

smtp_stop() {
  local dir=$1
  [ -f "$dir/smtp/pid" ] || return 0
  kill "$(cat "$dir/smtp/pid")" 2>/dev/null || true
  rm -f "$dir/smtp/pid"
}

# A free loopback port for service NAME: the one DIR/NAME/port recorded (so a restart keeps
# it), else one the kernel hands out. Tests run side by side on one machine this way.
pick_port() { # dir, name, requested
  local dir=$1 name=$2 requested=$3
  if [ "$requested" != 0 ]; then echo "$requested"; return; fi
  if [ -f "$dir/$name/port" ]; then cat "$dir/$name/port"; return; fi
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: services.sh start DIR PG_PORT REDIS_PORT SMTP_PORT | stop DIR | status DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$cmd" in
  start)
    [ $# -eq 5 ] || die "usage: services.sh start DIR PG_PORT REDIS_PORT SMTP_PORT"
    pg_port=$(pick_port "$dir" pg "$3")
    redis_port=$(pick_port "$dir" redis "$4")
    smtp_port=$(pick_port "$dir" smtp "$5")
    pg_start "$dir" "$pg_port"
    redis_start "$dir" "$redis_port"
    smtp_start "$dir" "$smtp_port"
    echo "services: postgresql://hydrant@127.0.0.1:$pg_port/hydrant redis://127.0.0.1:$redis_port/0 smtp://127.0.0.1:$smtp_port (state in $dir)"
    ;;
  stop)
    smtp_stop "$dir"; redis_stop "$dir"; pg_stop "$dir"
    ;;
  status)
    as_pg "$PG_BIN/pg_ctl" -D "$(pg_home "$dir")/data" status >/dev/null 2>&1 && echo "postgres: running" || echo "postgres: stopped"
    [ -f "$dir/redis/port" ] && redis-cli -p "$(cat "$dir/redis/port")" ping >/dev/null 2>&1 && echo "redis: running" || echo "redis: stopped"
    [ -f "$dir/smtp/pid" ] && kill -0 "$(cat "$dir/smtp/pid")" 2>/dev/null && echo "smtp: running" || echo "smtp: stopped"
    ;;
  pg-only)
    [ $# -eq 3 ] || die "usage: services.sh pg-only DIR PG_PORT"
    pg_start "$dir" "$3"
    ;;
  pg-stop) pg_stop "$dir" ;;
  pg-start) pg_start "$dir" "$(cat "$dir/pg/port")" ;;
  redis-stop) redis_stop "$dir" ;;
  redis-start) redis_start "$dir" "$(cat "$dir/redis/port")" ;;
  smtp-stop) smtp_stop "$dir" ;;
  smtp-start) smtp_start "$dir" "$(cat "$dir/smtp/port")" ;;
  *) die "unknown command $cmd" ;;
esac
