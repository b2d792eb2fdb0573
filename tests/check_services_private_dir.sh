#!/bin/bash
# scripts/services.sh works for a checkout the postgres user cannot traverse (a directory under
# root's 0700 home): PostgreSQL's files go to a private directory it owns, recorded in
# DIR/pg/home. Only meaningful as root (PostgreSQL runs as postgres then): skipped otherwise.
set -euo pipefail
services=$1
[ "$(id -u)" = 0 ] && getent passwd postgres >/dev/null || { echo "skipped: not root"; exit 77; }
top=$(mktemp -d) # 0700, root's
dir=$top/services
cleanup() {
  bash "$services" stop "$dir" >/dev/null 2>&1 || true
  [ -f "$dir/pg/home" ] && rm -rf "$(cat "$dir/pg/home")"
  rm -rf "$top"
}
trap cleanup EXIT
bash "$services" start "$dir" 0 0 0
port=$(cat "$dir/pg/port")
[ "$(psql -h 127.0.0.1 -p "$port" -U hydrant -d hydrant -Atc 'SELECT 1')" = 1 ]
[ -f "$dir/pg/home" ] || { echo "FAIL: no private PostgreSQL directory recorded"; exit 1; }
bash "$services" stop "$dir"
echo "ok: PostgreSQL ran from $(cat "$dir/pg/home") for $dir"
