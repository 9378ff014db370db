#!/usr/bin/env bash
# Installs the Debian 12 packages moert builds and tests with (skips the ones already present).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libgtest-dev libgmock-dev libpcre2-dev
      clang libclang-rt-14-dev python3 python3-numpy python3-pytest)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
