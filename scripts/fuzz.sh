#!/usr/bin/env bash
# Builds the multipart/form-data fuzzer with clang in build-fuzz/ (apart from the gcc
# builds) and runs it for SECONDS (default 30) on a copy of tests/fuzz/corpus/multipart,
# so that what it learns never lands in the repository. Exits non-zero on any crash; the
# crashing input is kept in build-fuzz/fuzz-artifacts/.
#   usage: scripts/fuzz.sh [SECONDS]     (HYDRANT_FUZZ_BUILD=DIR, JOBS=N to override)
set -euo pipefail
seconds=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HYDRANT_FUZZ_BUILD:-$root/build-fuzz}
packages=(clang libclang-rt-14-dev) # bookworm's clang is 14; the runtime holds libFuzzer

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "fuzz: missing packages; run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # A fresh image has no package lists: fetch them only when apt knows no candidate.
  candidates=$(apt-cache policy "${missing[@]}" 2>/dev/null | grep -c 'Candidate: [0-9]' || true)
  [ "$candidates" -eq ${#missing[@]} ] || apt-get update -qq
  echo "fuzz: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYDRANT_FUZZ=ON >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target fuzz_http_multipart

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/tests/fuzz/corpus/multipart" "$work/corpus"
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
# libFuzzer exits non-zero on a crash, a sanitizer report, a leak or a timeout.
if ! "$build/tests/fuzz/fuzz_http_multipart" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus"; then
  echo "fuzz: failed; the input is in $artifacts/ (replay: $build/tests/fuzz/fuzz_http_multipart FILE)" >&2
  exit 1
fi
