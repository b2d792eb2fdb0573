#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang in build-fuzz/, apart from the
# gcc builds, once, then runs each for SECONDS (default 60) on a copy of its seed corpus
# tests/fuzz/corpus/NAME, so that what it learns never lands in the repository; with
# tests/fuzz/NAME.dict as its dictionary when there is one. One job at a time. Exits non-zero
# when any target crashed, leaked, timed out or broke one of its checks; the input is kept in
# build-fuzz/fuzz-artifacts/NAME-*, the run's output in build-fuzz/fuzz-logs/NAME.log.
#   usage: scripts/fuzz.sh [SECONDS] [NAME...]   (NAME as in fuzz_NAME.c; all by default)
#   HYDRANT_FUZZ_BUILD=DIR, JOBS=N (build jobs) to override
#   HYDRANT_FUZZ_SEED=N fixes libFuzzer's seed: the ctest runs (fuzz.*) use one, so that a CI
#   run replays what was explored here instead of gating a change on a new random search; make
#   fuzz leaves it random, to explore. Whatever it finds goes into the corpus as a regression.
set -euo pipefail
seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [NAME...]" >&2
  exit 2
fi
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

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in "$root"/tests/fuzz/fuzz_*.c; do
    name=${src##*/fuzz_}
    targets+=("${name%.c}")
  done
fi
for t in "${targets[@]}"; do
  if [ ! -f "$root/tests/fuzz/fuzz_$t.c" ] || [ ! -d "$root/tests/fuzz/corpus/$t" ]; then
    echo "fuzz: no target $t (tests/fuzz/fuzz_$t.c and tests/fuzz/corpus/$t/)" >&2
    exit 2
  fi
done

CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYDRANT_FUZZ=ON >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target "${targets[@]/#/fuzz_}" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=$build/fuzz-artifacts
logs=$build/fuzz-logs
mkdir -p "$artifacts" "$logs"
failed=()
total_cpu=0
for t in "${targets[@]}"; do
  cp -r "$root/tests/fuzz/corpus/$t" "$work/$t"
  options=(-max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
           -artifact_prefix="$artifacts/$t-")
  [ -f "$root/tests/fuzz/$t.dict" ] && options+=(-dict="$root/tests/fuzz/$t.dict")
  [ -n "${HYDRANT_FUZZ_SEED:-}" ] && options+=(-seed="$HYDRANT_FUZZ_SEED")
  # libFuzzer exits non-zero on a crash, a sanitizer report, a leak or a timeout.
  rc=0
  timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f '%U %S' -o "$work/$t.time") # CPU seconds, when there
  "${timer[@]}" "$build/tests/fuzz/fuzz_$t" "${options[@]}" "$work/$t" >"$logs/$t.log" 2>&1 || rc=$?
  cpu=$(tail -n 1 "$work/$t.time" 2>/dev/null | awk '{printf "%.1f", $1 + $2}')
  cpu=${cpu:-0}
  total_cpu=$(awk -v a="$total_cpu" -v b="$cpu" 'BEGIN {printf "%.1f", a + b}')
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
  corpus=$(ls "$work/$t" | wc -l)
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED after ${cpu} s CPU; log $logs/$t.log, input in $artifacts/$t-*" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$logs/$t.log" | head -n 5 >&2 || true
  else
    echo "fuzz: $t ok: ${runs:-?} runs, ${cpu} s CPU, corpus $corpus inputs"
  fi
done
echo "fuzz: ${#targets[@]} targets, ${total_cpu} s CPU in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (replay: $build/tests/fuzz/fuzz_NAME FILE)" >&2
  exit 1
fi
