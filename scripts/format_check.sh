#!/usr/bin/env bash
# Fails when a tracked C, C++ or CUDA file differs from what the repository's .clang-format makes of it.
#   scripts/format_check.sh          (clang-format from Debian's clang-format package)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format_check.sh: clang-format not found" >&2; exit 1; }
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' '*.cpp' '*.cu' '*.cuh' '*.inc')
if ((${#bad[@]})); then
  echo "format_check.sh: ${#bad[@]} file(s) differ from .clang-format (run clang-format -i on them):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format_check.sh: every C/C++/CUDA file is formatted"
