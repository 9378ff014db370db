#!/usr/bin/env bash
# abi_check.sh catches what it must: from the baseline and libmoert it makes a removed function, a changed
# parameter type, an unannounced addition, a changed and an added constant (each must fail) and announced
# additions (MOERT_API_VERSION raised: must pass).   abi_selftest.sh LIB.so
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$1
header=$here/../../capi/include/moert/moert.h
check="$here/abi_check.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/h/moert" "$work/raised/moert" "$work/changed/moert" "$work/added/moert" "$work/added_raised/moert"
cp "$header" "$work/h/moert/moert.h"
sed -E 's/^#define MOERT_API_VERSION ([0-9]+)/#define MOERT_API_VERSION 99/' "$header" > "$work/raised/moert/moert.h"
sed -E 's/^#define MOERT_ERR_IO 2 /#define MOERT_ERR_IO 12 /' "$header" > "$work/changed/moert/moert.h"
sed -E 's/^(#define MOERT_FINISH_ERROR 5.*)$/\1\n#define MOERT_FINISH_SELFTEST 6/' "$header" > "$work/added/moert/moert.h"
sed -E 's/^#define MOERT_API_VERSION ([0-9]+)/#define MOERT_API_VERSION 99/' "$work/added/moert/moert.h" > "$work/added_raised/moert/moert.h"
"$here/abi_dump.sh" "$lib" "$(dirname "$header")" > "$work/now.abi"
# Corpus edits: drop one function (symbol and declaration); give moert_model_free another parameter type.
python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
now = open(work + "/now.abi").read()
def drop(text, name):
    text = re.sub(r"\n *<elf-symbol name='%s'[^\n]*/>" % name, "", text)
    return re.sub(r"\n *<function-decl name='%s'.*?</function-decl>" % name, "", text, flags=re.S)
open(work + "/dropped.abi", "w").write(drop(now, "moert_stream_cancel"))
m = re.search(r"(<function-decl name='moert_model_free'.*?<parameter type-id=')([^']+)('.*?</function-decl>)", now, re.S)
other = re.search(r"<function-decl name='moert_last_error'.*?<return type-id='([^']+)'", now, re.S).group(1)
assert m and other != m.group(2)
open(work + "/changed.abi", "w").write(now[:m.start()] + m.group(1) + other + m.group(3) + now[m.end():])
PY
base=$here/libmoert.abi consts=$here/constants.txt
expect() {  # expect pass|fail WHAT args...
  local want=$1 what=$2; shift 2
  if "$check" "$@" > "$work/out.txt" 2>&1; then got=pass; else got=fail; fi
  if [ "$got" != "$want" ]; then cat "$work/out.txt"; echo "FAILED: $what: expected $want, got $got"; exit 1; fi
  echo "ok: $what ($want)"
}
expect pass "the library as it is" "$base" "$consts" "$lib" "$header"
expect fail "a removed function" "$base" "$consts" "$work/dropped.abi" "$work/h/moert/moert.h"
expect fail "a changed parameter type" "$base" "$consts" "$work/changed.abi" "$work/h/moert/moert.h"
expect fail "an added function, same API version" "$work/dropped.abi" "$consts" "$work/now.abi" "$work/h/moert/moert.h"
expect pass "an added function, API version raised" "$work/dropped.abi" "$consts" "$work/now.abi" "$work/raised/moert/moert.h"
expect fail "a changed constant" "$base" "$consts" "$work/now.abi" "$work/changed/moert/moert.h"
expect fail "an added constant, same API version" "$base" "$consts" "$work/now.abi" "$work/added/moert/moert.h"
expect pass "an added constant, API version raised" "$base" "$consts" "$work/now.abi" "$work/added_raised/moert/moert.h"
echo "abi_check.sh: all 8 cases as expected"
