#!/bin/bash
# The production binary carries no test hook (CMakeLists.txt): no test route, job kind,
# statement or switch. usage: check_no_test_hooks.sh HYDRANT TEST-BINARY...
# Each marker must be absent from HYDRANT and present in one of the test binaries (so a
# renamed hook cannot make this check pass by looking for a string nobody has).
set -euo pipefail
production=$1
shift
markers=(/internal/test/echo test.noop test.sleep test.fail HYDRANT_TEST_ROUTES HYDRANT_TEST_JOBS
         echo_int_shared "pg_sleep(")
status=0
for marker in "${markers[@]}"; do
  if grep -qaF -- "$marker" "$production"; then
    echo "FAIL: $production contains the test hook '$marker'"
    status=1
  fi
  found=0
  for binary in "$@"; do
    grep -qaF -- "$marker" "$binary" && found=1
  done
  if [ "$found" = 0 ]; then
    echo "FAIL: no test binary contains '$marker' (is the marker list current?)"
    status=1
  fi
done
[ "$status" = 0 ] && echo "ok: $production has none of ${#markers[@]} test hooks"
exit "$status"
