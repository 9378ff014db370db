#!/usr/bin/env bash
# Installs the Debian 12 packages moert builds and tests with (skips the ones already present).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libgtest-dev libgmock-dev libpcre2-dev
      clang clang-format libclang-rt-14-dev libtsan2 python3 python3-numpy python3-pytest
      # bindings/: SWIG for Python and Java, the Python headers, a notebook runner, Go, JDK 17 with JUnit 4,
      # bindgen for moert-sys (and Debian's Rust when rustup's cargo is absent: see below)
      swig python3-dev python3-nbclient python3-nbformat python3-ipykernel golang-go default-jdk-headless
      junit4 libhamcrest-java bindgen
      # expert parallelism across processes: the MPI transport and its mpirun tests
      libopenmpi-dev openmpi-bin
      # packaging and the install tests: the ABI baseline check (abidw/abidiff), the Python package build
      # (setuptools, wheel, build, venv, pip) and its type check, Maven with its install plugin for the pom,
      # dpkg-dev (dpkg-shlibdeps for CPack's .deb dependencies)
      abigail-tools python3-setuptools python3-wheel python3-build python3-venv python3-pip mypy
      maven libmaven-install-plugin-java dpkg-dev
      # moert-serve (samples/serve): cpp-httplib; its tests drive it with the `openai` npm client on Node.js
      libcpp-httplib-dev nodejs)
# npm: Debian's package, unless the Node.js installed already brings its own (NodeSource's does).
if ! command -v npm >/dev/null 2>&1; then
  PKGS+=(npm)
fi
# Rust: a rustup toolchain (cargo on PATH or in ~/.cargo/bin) is used when present, else Debian's.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PKGS+=(cargo rustc)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
