#!/usr/bin/env bash
# scripts/settings-doc.sh [--check] [HYDRANT]
#
# Writes `hydrant settings` (the settings table of src/config/settings.c with the defaults of
# src/config/config.c) between the two marker lines of docs/SETTINGS.md, so the document
# states what the code does. --check changes nothing: it exits 1 with a diff when the
# document differs (the ctest docs.settings). HYDRANT: the binary (default build/hydrant).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=0
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi
bin=${1:-$root/build/hydrant}
doc=$root/docs/SETTINGS.md
begin='<!-- settings: begin (scripts/settings-doc.sh writes this table from `hydrant settings`) -->'
end='<!-- settings: end -->'
table=$(mktemp)
new=$(mktemp)
trap 'rm -f "$table" "$new"' EXIT
"$bin" settings >"$table"
# The lines outside the markers as they are, the table between them.
if ! awk -v begin="$begin" -v end="$end" -v table="$table" '
    $0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; found++; next }
    $0 == end && skip { skip = 0; closed++ }
    !skip { print }
    END { exit !(found == 1 && closed == 1) }' "$doc" >"$new"; then
  echo "settings-doc: $doc needs one line '$begin' and, after it, one line '$end'" >&2
  exit 2
fi
if [ "$check" = 1 ]; then
  if ! diff -u "$doc" "$new"; then
    echo "settings-doc: docs/SETTINGS.md differs from 'hydrant settings': run scripts/settings-doc.sh" >&2
    exit 1
  fi
  exit 0
fi
cp "$new" "$doc"
