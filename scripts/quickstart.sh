#!/usr/bin/env bash
# First run on a fresh Debian 12 machine: install what is missing, build the moert program, and complete a
# prompt with the embedded default model (moert-tiny-coder, shipped in samples/models).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${MOERT_CMAKE_ARGS:-} > /dev/null
cmake --build build -j2 --target moert_cli
build/samples/cli/moert run --prompt "${1:-def fibonacci(n):
}" --max-tokens "${2:-64}"
