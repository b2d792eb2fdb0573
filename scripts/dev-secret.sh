#!/usr/bin/env bash
# A random development JWT secret in FILE (0600), if absent.
set -euo pipefail
file=${1:?usage: dev-secret.sh FILE}
[ -s "$file" ] && exit 0
mkdir -p "$(dirname "$file")"
(umask 077 && openssl rand -base64 48 | tr -d '\n' >"$file")
