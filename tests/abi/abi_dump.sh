#!/usr/bin/env bash
# The ABI corpus of libmoert (abidw) restricted to its exported moert_* symbols and the public header's
# types: what abi_check.sh compares.   abi_dump.sh LIB.so HEADER_DIR > corpus.abi
set -euo pipefail
lib=$1 headers=$2
list=$(mktemp)
trap 'rm -f "$list"' EXIT
{ echo "[moert_whitelist]"; nm -D --defined-only "$lib" | awk '$3 ~ /^moert_/ {sub(/@.*/, "", $3); print "  " $3}'; } > "$list"
abidw --kmi-whitelist "$list" --headers-dir "$headers" --drop-private-types --no-show-locs --no-corpus-path \
  --no-comp-dir-path "$lib" | sed -E "s|path='[^']*/capi/|path='capi/|"
