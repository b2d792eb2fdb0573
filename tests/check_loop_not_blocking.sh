#!/bin/bash
# The libraries that event-loop code is made of reference no blocking libpq or hiredis call
# (CMakeLists.txt: blocking commands live in hydrant_cli, linked only by the executables).
# usage: check_loop_not_blocking.sh NM LIBRARY.a...
# Allowed: the job workers' own connections (libhydrant_jobs.a's pg.c.o and pool.c.o run on
# worker and listener threads, never on a loop), and their helpers jobs_pg_connect and
# jobs_pg_exec from inside hydrant_jobs only; the blocking event publisher (libhydrant_db.a's
# events_pub.c.o, blocking hiredis) and jobs_events_* called from inside hydrant_jobs only.
set -euo pipefail
nm=$1
shift
blocking='redisConnect|redisConnectWithTimeout|redisCommand|redisCommandArgv|redisGetReply|PQconnectdb|PQconnectdbParams|PQsetdbLogin|PQexec|PQexecParams|PQexecPrepared|PQprepare|PQdescribePrepared|PQdescribePortal|PQreset|PQping|PQpingParams|PQfn'
helpers='jobs_pg_connect|jobs_pg_exec|jobs_events_publish|jobs_events_publish_rows|db_events_pub|db_events_pub_new|db_events_pub_add|db_events_pub_flush'
status=0
for lib in "$@"; do
  name=$(basename "$lib")
  while read -r object symbol; do
    case "$name:$object:$symbol" in
      libhydrant_jobs.a:pg.c.o:* | libhydrant_jobs.a:pool.c.o:*) continue ;;
      libhydrant_jobs.a:*:jobs_pg_*) continue ;;
      libhydrant_db.a:events_pub.c.o:*) continue ;;
      libhydrant_jobs.a:*:db_events_pub* | libhydrant_jobs.a:*:jobs_events_*) continue ;;
    esac
    echo "FAIL: $name($object) calls $symbol"
    status=1
  done < <("$nm" -A -u "$lib" | sed -nE "s/^[^:]*:([^:]+):[[:space:]]+U ($blocking|$helpers)\$/\1 \2/p")
done
[ "$status" = 0 ] && echo "ok: no blocking libpq or hiredis call in $# loop libraries"
exit "$status"
