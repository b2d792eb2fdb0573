#!/usr/bin/env bash
# Installs the Debian packages hydrant needs to build, test and run, when any is missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git ca-certificates curl openssl
  libh2o-dev libuv1-dev libjwt-dev libargon2-dev libpq-dev libhiredis-dev
  libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev libcmocka-dev libcrypt-dev
  postgresql redis-server redis-tools python3 python3-aiosmtpd nghttp2-client python3-jwt python3-argon2 wrk
  clang libclang-rt-14-dev
)
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
