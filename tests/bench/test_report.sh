#!/usr/bin/env bash
# tests/bench/test_report.sh [PATH/TO/bench/report]
#
# bench/report on synthetic histories in a temporary directory: the table, the regression
# flags (median of the previous runs, errors), --fail-on-regression, "no history yet", and
# the chart when gnuplot is installed (that one check is skipped, and says so, without it).
set -uo pipefail

report=${1:-$(cd "$(dirname "$0")/../.." && pwd)/bench/report}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok: $1"; }
not_ok() { failed=$((failed + 1)); echo "FAILED: $1"; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
lines_matching() { grep -c -- "$1" "$2" || true; } # a count, 0 when none

# row RUN DAY SCENARIO RPS P99 ERRORS: one history line; every series is hydrant h2 closed
# c32, so the default chart selection draws them all.
row() {
  printf '{"run_id":"2026120%sT100000Z-c%s","date":"2026-12-0%sT10:00:00Z","commit":"c%s",' \
    "$2" "$1" "$2" "$1"
  printf '"machine":{"host":"testvm","cores":2,"cpu":"Test CPU"},"tools":{"h2load":"1.0"},'
  printf '"scenario":"%s","protocol":"h2","mode":"closed","concurrency":32,"server":"hydrant",' "$3"
  printf '"runs":3,"rps":%s,"p50_ms":5.0,"p90_ms":8.0,"p99_ms":%s,"p999_ms":12.0,"errors":%s}\n' \
    "$4" "$5" "$6"
}

# Six runs. "me" is steady: its third run is an outlier (1500 req/s) that would put the
# newest 950 more than 10% below a mean (1100) but not below the median (1000). "login" is
# 20% slower in the newest run. "health" keeps its speed but has errors in the newest run.
history=$work/history.jsonl
for run in 1 2 3 4 5 6; do
  me_rps=1000
  [ $run = 3 ] && me_rps=1500
  [ $run = 6 ] && me_rps=950
  login_rps=1000
  [ $run = 6 ] && login_rps=800
  health_errors=0
  [ $run = 6 ] && health_errors=3
  row $run $run me $me_rps 10.0 0
  row $run $run login $login_rps 10.0 0
  row $run $run health 1000 10.0 $health_errors
done >"$history"
# The newest "health" row lacks p90_ms: not measured, printed as a dash.
sed -i '$ s/"p90_ms":8.0,//' "$history"
# A torn append must not hide the runs around it.
sed -i '2 a {"run_id": "torn' "$history"

out=$work/out
"$report" --history "$history" --out "$out" >"$work/stdout" 2>"$work/stderr"
check "exit status 0 with regressions but without --fail-on-regression" [ $? = 0 ]
md=$out/latest.md
check "latest.md written" [ -s "$md" ]
check "a line that is not JSON is skipped and reported" grep -q 'skipped 1 line(s) not JSON (line 3)' "$work/stderr"
check "header names the newest run" grep -q '^# Benchmark run 20261206T100000Z-c6$' "$md"
check "header names its commit and date" grep -q 'Commit c6, started 2026-12-06T10:00:00Z' "$md"
check "header names the machine" grep -q 'testvm, 2 cores, Test CPU' "$md"
check "header names the tools" grep -q 'h2load 1.0' "$md"
for scenario in me login health; do
  check "table row for $scenario" grep -q "^| $scenario | h2 | closed | 32 | hydrant | " "$md"
done
check "table shows the newest run only (3 rows)" \
  [ "$(lines_matching '| h2 | closed | 32 | hydrant |' "$md")" = 3 ]
check "newest login req/s in the table" grep -q '^| login |.*| 800 |' "$md"
check "missing MB/s and p90 printed as dashes" grep -q '^| health | h2 | closed | 32 | hydrant | 1000 | – | 5 | – |' "$md"
check "a Regressions section" grep -q '^## Regressions' "$md"

for where in "$md" "$work/stdout"; do
  name=$(basename "$where")
  check "$name: exactly two series flagged" [ "$(lines_matching 'REGRESSION' "$where")" = 2 ]
  check "$name: slow series flagged" grep -q 'REGRESSION login h2 closed c32 hydrant: req/s -20' "$where"
  check "$name: errored series flagged" grep -q 'REGRESSION health h2 closed c32 hydrant: errors 3' "$where"
  check "$name: steady series not flagged (median, not mean)" \
    grep -q '^\(- \)\?ok me h2 closed c32 hydrant' "$where"
done

"$report" --history "$history" --out "$out" --fail-on-regression >/dev/null 2>&1
check "--fail-on-regression exits 1 when flagged" [ $? = 1 ]

grep '"scenario":"me"' "$history" >"$work/steady.jsonl"
"$report" --history "$work/steady.jsonl" --out "$work/steady" --fail-on-regression >/dev/null 2>&1
check "--fail-on-regression exits 0 when nothing is flagged" [ $? = 0 ]

# p99: 9% higher than the median is within the 10% tolerance, 20% higher is a regression.
{ row 1 1 fast 1000 10.0 0; row 1 1 laggy 1000 10.0 0
  row 2 2 fast 1000 10.9 0; row 2 2 laggy 1000 12.0 0; } >"$work/p99.jsonl"
"$report" --history "$work/p99.jsonl" --out "$work/p99" >"$work/p99.out" 2>&1
check "p99 20% higher is flagged" grep -q 'REGRESSION laggy h2 closed c32 hydrant: p99 +20' "$work/p99.out"
check "p99 9% higher is not flagged" grep -q '^ok fast h2 closed c32 hydrant' "$work/p99.out"

grep '"run_id":"20261201T100000Z-c1"' "$history" >"$work/single.jsonl"
"$report" --history "$work/single.jsonl" --out "$work/single" --fail-on-regression >"$work/single.out" 2>&1
check "a single run exits 0" [ $? = 0 ]
check "a single run says 'no history yet' for each series" \
  [ "$(lines_matching 'no history yet' "$work/single/latest.md")" = 3 ]
check "a single run flags nothing" [ "$(lines_matching 'REGRESSION' "$work/single.out")" = 0 ]

# An open-loop row carries a same-rate baseline instead of a ceiling: shown in its place.
row 1 1 me_open 500 4.0 0 | sed 's/}$/,"baseline":{"p50_ms":0.2,"p99_ms":3.5}}/' >"$work/open.jsonl"
"$report" --history "$work/open.jsonl" --out "$work/open" >/dev/null 2>&1
check "an open-loop baseline shown in the ceiling column" \
  grep -q '^| me_open |.*| bare libh2o, same client and rate: p99 3.50 ms |' "$work/open/latest.md"

# Without gnuplot the table is still written and the status is still 0: PATH is emptied,
# and the interpreter is called by its full path.
python=$(python3 -c 'import sys; print(sys.executable)')
mkdir -p "$work/empty-path"
PATH=$work/empty-path "$python" "$report" --history "$history" --out "$work/nognuplot" >"$work/nognuplot.out" 2>&1
check "without gnuplot: exit status 0" [ $? = 0 ]
check "without gnuplot: latest.md written" [ -s "$work/nognuplot/latest.md" ]
check "without gnuplot: a clear message" grep -q 'gnuplot not found' "$work/nognuplot.out"

if command -v gnuplot >/dev/null; then
  check "chart written as a PNG" [ "$(head -c 8 "$out/history.png" | od -An -c | tr -d ' ')" = '211PNG\r\n032\n' ]
  check "chart drew all three series" grep -q 'wrote .*history.png (3 series over 6 runs)' "$work/stdout"
else
  echo "skipped: chart check (gnuplot is not installed; apt-get install gnuplot-nox)"
fi

if [ $failed != 0 ]; then
  echo "--- report stdout:" && cat "$work/stdout"
  echo "--- report stderr:" && cat "$work/stderr"
fi
echo "bench report: $passed passed, $failed failed"
[ $failed = 0 ]
