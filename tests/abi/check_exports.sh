#!/usr/bin/env bash
# Compares the dynamic symbols libmoert exports with the golden list, and checks its SONAME.
set -euo pipefail
lib=$1 golden=$2
actual=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sed 's/@.*//' | sort -u)
if ! diff <(echo "$actual") <(sort -u "$golden"); then
  echo "exported symbols differ from $golden (< library, > golden)"
  exit 1
fi
others=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^moert_' | grep -v '^MOERT_' || true)
if [ -n "$others" ]; then
  echo "non-moert symbols exported"; exit 1
fi
# (captured first: grep -q closing the pipe early would fail the pipeline under pipefail)
headers=$(objdump -p "$lib")
grep -q 'SONAME *libmoert\.so\.[0-9]' <<<"$headers" || { echo "no SONAME libmoert.so.N"; exit 1; }
echo "exports: $(echo "$actual" | wc -l) symbols match; SONAME ok"
