#!/usr/bin/env bash
# Installs the Debian packages hydrant needs, when any is missing, by set:
#   scripts/deps.sh [run] [test] [bench]     (no set: all three)
#   run    build and run the server (make run): compiler, libraries, PostgreSQL, Redis, the
#          SMTP sink's aiosmtpd
#   test   the tests on top (make test): cmocka, the Python checks' jwt and argon2, clang for
#          the fuzz target, sslscan for the TLS profile test (integration.test_tls), haproxy
#          and python3-yaml for the cluster tests and deploy.compose
#   bench  the load generators (make bench): h2load (nghttp2-client), wrk, python3-h2 (the
#          HTTP/2 attacker of bench/attack), libnghttp2-dev (bench/load/h2open, the open loop)
#   cluster the fleet of make cluster and its tests: HAProxy on top of run
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
run=(
  build-essential cmake pkg-config git ca-certificates curl openssl
  libh2o-dev libwslay-dev libuv1-dev libjwt-dev libargon2-dev libpq-dev libhiredis-dev
  libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev libcrypt-dev
  postgresql redis-server redis-tools python3 python3-aiosmtpd
)
test=(libcmocka-dev python3-jwt python3-argon2 python3-yaml clang libclang-rt-14-dev sslscan haproxy)
bench=(nghttp2-client libnghttp2-dev wrk python3-h2)
cluster=(haproxy)
[ $# -gt 0 ] || set -- run test bench
packages=()
for set in "$@"; do
  case "$set" in
    run) packages+=("${run[@]}") ;;
    test) packages+=("${run[@]}" "${test[@]}") ;;
    bench) packages+=("${run[@]}" "${bench[@]}") ;;
    cluster) packages+=("${run[@]}" "${cluster[@]}") ;;
    *) echo "deps: unknown set $set (run, test, bench or cluster)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
