#!/usr/bin/env bash
# Installs the pinned `openai` npm client (package.json + package-lock.json here) into DIR (the build
# tree) for the serve tests; skips the install when that exact version is already there. Fails clearly
# when npm is missing or the registry cannot be reached: the serve tests then do not run (and fail).
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
dir=$1
mkdir -p "$dir"
want=$(sed -n 's/.*"openai": *"\([^"]*\)".*/\1/p' "$src/package.json" | head -1)
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/openai/package.json" 2>/dev/null | head -1 || true)
if [ -n "$have" ] && [ "$have" = "$want" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
  echo "openai@$have already installed in $dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: run scripts/install-deps.sh (Debian: apt install nodejs npm)" >&2
  exit 1
fi
cp "$src/package.json" "$src/package-lock.json" "$dir/"
cd "$dir"
if ! npm ci --no-audit --no-fund --prefer-offline; then
  echo "npm ci failed: the serve tests need the openai@$want client from the npm registry" >&2
  exit 1
fi
