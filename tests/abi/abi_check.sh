#!/usr/bin/env bash
# libmoert's ABI against the committed baseline (libmoert.abi, made by abidw from abigail-tools; constants.txt,
# the header's MOERT_* values). A removed or changed function or type, or a removed or changed constant,
# fails; an addition passes only when moert.h raises MOERT_API_VERSION above the baseline's. After a
# deliberate addition: raise MOERT_API_VERSION, then tests/abi/update_baseline.sh build/capi/libmoert.so.0.
#   abi_check.sh BASELINE.abi CONSTANTS.txt LIB.so|CURRENT.abi MOERT_H
set -euo pipefail
baseline=$1 constants=$2 current=$3 header=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ $current == *.abi ]]; then
  cp "$current" "$work/current.abi"
else
  "$here/abi_dump.sh" "$current" "$(dirname "$header")" > "$work/current.abi"
fi

# A library without the C API's debug info would compare as nothing at all.
if ! grep -q "<function-decl name='moert_" "$work/current.abi"; then
  echo "no moert_ function types in the corpus: libmoert built without the C API's debug info (capi/CMakeLists.txt)"
  exit 1
fi

fail=0 added=0
# Functions and variables: abidiff's summary lines ("Functions changes summary: 1 Removed, 0 Changed, 2 Added
# functions"); exit status bit 8 is an incompatible change, bit 4 any change.
set +e
abidiff --no-show-locs --headers-dir1 "$(dirname "$header")" --headers-dir2 "$(dirname "$header")" \
  "$baseline" "$work/current.abi" > "$work/diff.txt" 2>&1
rc=$?
set -e
if (( rc & 3 )); then
  cat "$work/diff.txt"; echo "abidiff failed (status $rc)"; exit 1
fi
read -r removed changed add_f < <(sed -nE 's/.*Functions changes summary: ([0-9]+) Removed, ([0-9]+) Changed.*, ([0-9]+) Added.*/\1 \2 \3/p' "$work/diff.txt" | head -1; echo "0 0 0")
read -r vremoved vchanged add_v < <(sed -nE 's/.*Variables changes summary: ([0-9]+) Removed, ([0-9]+) Changed.*, ([0-9]+) Added.*/\1 \2 \3/p' "$work/diff.txt" | head -1; echo "0 0 0")
if (( rc & 8 || removed + changed + vremoved + vchanged > 0 )); then
  cat "$work/diff.txt"
  echo "ABI break: $removed removed, $changed changed functions; $vremoved removed, $vchanged changed variables"
  fail=1
fi
added=$((add_f + add_v))

# Constants: every MOERT_* integer #define of the header.
extract() { sed -nE 's/^#define (MOERT_[A-Z0-9_]+) +(-?[0-9]+).*/\1 \2/p' "$1" | sort; }
extract "$header" > "$work/constants.txt"
api_now=$(awk '$1 == "MOERT_API_VERSION" {print $2}' "$work/constants.txt")
api_base=$(awk '$1 == "MOERT_API_VERSION" {print $2}' "$constants")
grep -v '^MOERT_API_VERSION ' "$constants" | sort > "$work/base_c.txt" || true
grep -v '^MOERT_API_VERSION ' "$work/constants.txt" > "$work/now_c.txt" || true
lost=$(comm -23 "$work/base_c.txt" "$work/now_c.txt")
new=$(comm -13 "$work/base_c.txt" "$work/now_c.txt")
if [ -n "$lost" ]; then
  echo "constants removed or changed (baseline values):"; echo "$lost"
  [ -n "$new" ] && { echo "now:"; echo "$new"; }
  fail=1
elif [ -n "$new" ]; then
  echo "constants added:"; echo "$new"
  added=$((added + $(wc -l <<<"$new")))
fi

if (( api_now < api_base )); then
  echo "MOERT_API_VERSION went down ($api_base -> $api_now)"; fail=1
fi
if (( added > 0 && api_now <= api_base )); then
  grep -A3 'Added' "$work/diff.txt" || true
  echo "$added additions to the API without raising MOERT_API_VERSION (still $api_now): raise it, then run tests/abi/update_baseline.sh"
  fail=1
fi
if (( fail )); then exit 1; fi
echo "ABI ok against the baseline (API version $api_base -> $api_now, $added additions)"
