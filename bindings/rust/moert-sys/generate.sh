#!/bin/sh
# Generates moert-sys/src/bindings.rs from capi/include/moert/moert.h with Debian's bindgen.
# Usage: generate.sh [OUTPUT]   (default: the checked-in src/bindings.rs; ctest writes elsewhere and diffs)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$here/src/bindings.rs}
bindgen "$root/capi/include/moert/moert.h" \
  --allowlist-function 'moert_.*' --allowlist-type 'moert_.*' --allowlist-var 'MOERT_.*' \
  --size_t-is-usize --no-layout-tests --no-doc-comments \
  -o "$out" -- -I"$root/capi/include"
