#!/usr/bin/env bash
# Rewrites the ABI baseline (libmoert.abi, constants.txt) from a built libmoert, after a deliberate, reviewed
# change: additions with MOERT_API_VERSION raised.   tests/abi/update_baseline.sh build/capi/libmoert.so.0
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
header=$here/../../capi/include/moert/moert.h
"$here/abi_dump.sh" "$1" "$(dirname "$header")" > "$here/libmoert.abi"
sed -nE 's/^#define (MOERT_[A-Z0-9_]+) +(-?[0-9]+).*/\1 \2/p' "$header" | sort > "$here/constants.txt"
echo "baseline written: $here/libmoert.abi, $here/constants.txt"
