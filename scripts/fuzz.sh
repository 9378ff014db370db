#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.cpp) with clang, ASan and UBSan in a separate build
# directory and runs each for N seconds (default 20) over the checked-in seed corpus. New inputs go to
# $BUILD/fuzz-corpus/<target>; crashes to $BUILD/fuzz-artifacts/ (the script then fails).
#   scripts/fuzz.sh [seconds per target]        env: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-${FUZZ_SECONDS:-20}}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}

if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz.sh: clang++ not found; libFuzzer needs clang (the g++ build runs the corpus replay under ctest -L fuzz)" >&2
  exit 1
fi

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOERT_FUZZ=ON -DMOERT_CUDA=OFF \
  -DMOERT_FUZZ_SECONDS="$SECS" >/dev/null

targets=()
for src in tests/fuzz/fuzz_*.cpp; do
  targets+=("$(basename "$src" .cpp)")
done
cmake --build "$BUILD" --target "${targets[@]}" -j"$JOBS"

mkdir -p "$BUILD/fuzz-artifacts"
status=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  mkdir -p "$BUILD/fuzz-corpus/$name"
  seeds=()
  [ -d "tests/fuzz/corpus/$name" ] && seeds+=("tests/fuzz/corpus/$name")
  echo "== $t: ${SECS}s"
  if ! "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-artifacts/$t-" \
      "$BUILD/fuzz-corpus/$name" "${seeds[@]}" 2>"$BUILD/fuzz-artifacts/$t.log"; then
    echo "fuzz.sh: $t FAILED; log: $BUILD/fuzz-artifacts/$t.log" >&2
    tail -40 "$BUILD/fuzz-artifacts/$t.log" >&2
    status=1
  else
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done)" "$BUILD/fuzz-artifacts/$t.log" || true
  fi
done
exit $status
