#!/usr/bin/env bash
# The README's test command: configure, build (2 jobs) and run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${MOERT_CMAKE_ARGS:-}
cmake --build "$BUILD" -j2
ctest --test-dir "$BUILD" --output-on-failure -j2 ${CTEST_ARGS:-}
