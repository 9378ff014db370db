#!/usr/bin/env bash
# The install tests (ctest label install): moert installed into a temporary prefix with `cmake --install`,
# then used from outside the tree as a user would, one case per run:
#   install_test.sh CASE      CASE: prefix layout no_cuda_needed c_pkgconfig c_find_package python python_wheel
#                                   python_other python_mypy rust rust_doc go java java_maven cpack
# Environment (set by tests/install/CMakeLists.txt): MOERT_SOURCE, MOERT_BUILD, MOERT_WORK (this run's
# folder; the prefix is $MOERT_WORK/prefix), MOERT_HAVE_CUDA, the tools (CARGO, GO, JAVA, JAVAC, MVN, PYTHON).
set -euo pipefail
case_=$1
src=$MOERT_SOURCE build=$MOERT_BUILD work=$MOERT_WORK
prefix=$work/prefix
out=$work/$case_
outside=$src/tests/install/outside
# Nothing may come from the build tree or the caller's environment.
unset LD_LIBRARY_PATH PYTHONPATH MOERT_LIB_DIR MOERT_MODEL MOERT_DEFAULT_MODEL MOERT_MODEL_DIR CGO_CFLAGS CGO_LDFLAGS
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
model() { pkg-config --variable=modeldir moert; }
streamed() { grep -E "streamed [1-9][0-9]* tokens" "$1" >/dev/null || { cat "$1"; echo "no text streamed"; exit 1; }; }
if [ "$case_" != prefix ]; then
  [ -f "$prefix/lib/pkgconfig/moert.pc" ] || { echo "no installed prefix at $prefix (install.prefix runs first)"; exit 1; }
  rm -rf "$out"; mkdir -p "$out"
fi

case $case_ in
prefix)  # cmake --install into a fresh prefix (every other case uses it)
  rm -rf "$work"; mkdir -p "$work"
  "${CMAKE:-cmake}" --install "$build" --prefix "$prefix" > "$work/install.log"
  echo "installed $(wc -l < "$work/install.log") files into $prefix"
  ;;
layout)  # what is installed, and the CLI with its default model found from the prefix alone
  files="include/moert/moert.h lib/libmoert.so lib/libmoert.so.0 lib/cmake/moert/moertConfig.cmake
         lib/cmake/moert/moertConfigVersion.cmake lib/pkgconfig/moert.pc bin/moert
         share/moert/models/moert-tiny-coder/config.json share/moert/swig/moert.i"
  [ "${MOERT_HAVE_CUDA:-OFF}" = ON ] && files+=" lib/libmoert_cuda.so.0"
  [ -n "${JAVA:-}" ] && files+=" share/java/moert.jar"
  for f in $files; do
    [ -e "$prefix/$f" ] || { echo "missing: $f"; exit 1; }
  done
  # (outputs captured first: grep -q closing a pipe early fails the pipeline under pipefail)
  grep -q 'SONAME *libmoert\.so\.0' <<<"$(objdump -p "$prefix/lib/libmoert.so.0")" || { echo "SONAME"; exit 1; }
  [ "$(pkg-config --modversion moert)" = "$(sed -n 's/^project(moert VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ]
  if grep -F "$src" <<<"$(strings "$prefix/bin/moert")"; then echo "bin/moert names the source tree"; exit 1; fi
  # Moved away from the build tree: the CLI finds its model (share/moert/models) relative to itself.
  cp -a "$prefix" "$out/moved"
  (cd /; "$out/moved/bin/moert" run --prompt "def f(x):" --max-tokens 8 > "$out/run.err" 2>&1) ||
    { cat "$out/run.err"; exit 1; }
  grep -q "8 generated" "$out/run.err" || { cat "$out/run.err"; exit 1; }
  MOERT_MODEL=$out/nowhere "$out/moved/bin/moert" run --prompt x --max-tokens 1 > /dev/null 2> "$out/env.err" && exit 1
  grep -q "$out/nowhere" "$out/env.err" || { cat "$out/env.err"; echo "MOERT_MODEL not used"; exit 1; }
  echo "layout ok; the moved prefix runs: $(grep -o '\[[^]]*generated[^]]*\]' "$out/run.err")"
  ;;
no_cuda_needed)  # libmoert needs no CUDA, NCCL or MPI library; runs on CPU with CUDA hidden; cuda without the provider
  for lib in "$prefix/lib/libmoert.so.0" "$build/capi/libmoert.so.0"; do
    needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    echo "$lib needs: $(echo $needed)"
    if grep -Ei 'cuda|cublas|nccl|mpi|open-pal|open-rte' <<<"$needed"; then echo "libmoert needs the above"; exit 1; fi
  done
  cc -o "$out/app" "$outside/app.c" $(pkg-config --cflags --libs moert)
  # The loader without its cache (where the CUDA toolkit's folders are registered) and with an empty
  # LD_LIBRARY_PATH: only the system folders. libcublasLt / libnccl are then not found by anyone.
  loader=$(readelf -l "$out/app" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
  hidden=("$loader" --inhibit-cache --library-path "$prefix/lib")
  if "${hidden[@]}" /bin/true 2>/dev/null; then
    LD_LIBRARY_PATH= "${hidden[@]}" "$out/app" "$(model)" cpu > "$out/cpu.txt"
    streamed "$out/cpu.txt"
    echo "CPU run with the CUDA libraries hidden: ok"
    if [ "${MOERT_HAVE_CUDA:-OFF}" = ON ]; then
      # The provider is there but its own dependencies are not: the error names them.
      LD_LIBRARY_PATH= "${hidden[@]}" "$out/app" "$(model)" cuda > "$out/cuda_hidden.txt" && exit 1
      cat "$out/cuda_hidden.txt"
      grep -q "MOERT_ERR_UNSUPPORTED" "$out/cuda_hidden.txt"
      grep -q "libmoert_cuda.so.0" "$out/cuda_hidden.txt"
      grep -Eq "$prefix/lib/libmoert_cuda.so.0: (libcublasLt|libnccl)" "$out/cuda_hidden.txt"
    fi
  else
    echo "(this loader has no --inhibit-cache: the hidden-CUDA run is left out)"
  fi
  # libmoert alone in a folder (no provider beside it, none on the search path): device cuda fails cleanly.
  mkdir -p "$out/alone"
  cp "$prefix/lib/libmoert.so.0" "$out/alone/"
  cc -o "$out/app_alone" "$outside/app.c" $(pkg-config --cflags moert) -L"$prefix/lib" -lmoert
  LD_LIBRARY_PATH=$out/alone "$out/app_alone" "$(model)" cuda > "$out/cuda.txt" && exit 1
  cat "$out/cuda.txt"
  grep -q "load: MOERT_ERR_UNSUPPORTED: device \"cuda\" needs the provider library libmoert_cuda.so.0" "$out/cuda.txt"
  grep -q "$out/alone/libmoert_cuda.so.0: cannot open shared object file" "$out/cuda.txt"
  LD_LIBRARY_PATH=$out/alone "$out/app_alone" "$(model)" cpu > "$out/alone_cpu.txt"
  streamed "$out/alone_cpu.txt"
  ;;
c_pkgconfig)
  cc -std=c99 -Wall -Werror -o "$out/app" "$outside/app.c" $(pkg-config --cflags --libs moert)
  "$out/app" "$(model)" | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
c_find_package)
  "${CMAKE:-cmake}" -S "$outside" -B "$out/b" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$out/configure.log"
  "${CMAKE:-cmake}" --build "$out/b" > "$out/build.log"
  "$out/b/app" "$(cat "$out/b/model_dir.txt")" | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
python)  # pip install into a fresh venv from a copy of the package folder (as from an sdist)
  cp -r "$src/bindings/python" "$out/pkg"; rm -rf "$out/pkg/tests"
  # numpy (a declared dependency) from the system: there is no package index here.
  "$PYTHON" -m venv --system-site-packages "$out/venv"
  (cd "$out" && "$out/venv/bin/python" -m pip install -q --no-build-isolation --no-index "$out/pkg")
  (cd / && "$out/venv/bin/python" "$outside/app.py" "$(model)") | tee "$out/run.txt"
  streamed "$out/run.txt"
  "$out/venv/bin/python" -c "import moert, sys; sys.exit(0 if moert.__file__.startswith('$out/venv') else 1)"
  ;;
python_wheel)
  cp -r "$src/bindings/python" "$out/pkg"; rm -rf "$out/pkg/tests"
  (cd "$out/pkg" && "$PYTHON" -m build --wheel --no-isolation -o "$out/dist" > "$out/build.log" 2>&1) ||
    { tail -30 "$out/build.log"; exit 1; }
  whl=$(ls "$out"/dist/moert-*.whl)
  "$PYTHON" -m zipfile -l "$whl" > "$out/contents.txt"
  for f in moert/__init__.py moert/__init__.pyi moert/py.typed moert/moert_native.py moert/libmoert.so.0; do
    grep -q "$f" "$out/contents.txt" || { cat "$out/contents.txt"; echo "wheel lacks $f"; exit 1; }
  done
  grep -q '^Requires-Dist: numpy' <("$PYTHON" -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.read([n for n in z.namelist() if n.endswith('METADATA')][0]).decode())" "$whl")
  "$PYTHON" -m venv --system-site-packages "$out/venv"
  "$out/venv/bin/python" -m pip install -q --no-index "$whl"
  (cd / && "$out/venv/bin/python" "$outside/app.py" "$(model)") | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
python_other)  # another CPython (PYTHON_OTHER, e.g. a pyenv build first on PATH): the module compiles for it
  cp -r "$src/bindings/python" "$out/pkg"; rm -rf "$out/pkg/tests"
  "$PYTHON_OTHER" -m venv "$out/venv"
  py=$out/venv/bin/python
  # --no-build-isolation needs setuptools and wheel in that Python; with no package index here, a venv
  # without wheel borrows Debian's (pure Python) through a .pth file.
  if ! "$py" -c "import wheel" 2>/dev/null; then
    whl_dir=$("$PYTHON" -c "import os, wheel; print(os.path.dirname(os.path.dirname(wheel.__file__)))")
    mkdir -p "$out/borrowed"
    for d in "$whl_dir"/wheel "$whl_dir"/wheel-*-info; do ln -s "$d" "$out/borrowed/"; done  # (the -info: its bdist_wheel entry point)
    echo "$out/borrowed" > "$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/borrowed.pth"
  fi
  (cd "$out" && "$py" -m pip install -q --no-build-isolation --no-index --no-deps "$out/pkg")
  # numpy may be missing there: stream text only (logits need numpy).
  (cd / && "$py" -c "
import sys, moert
with moert.load(sys.argv[1]) as m:
    n = sum(1 for t in m.generate('def fibonacci(n):\\n', max_tokens=24, ignore_eos=True) if print(t.text, end='') or True)
print('\\nstreamed %d tokens with Python %s' % (n, sys.version.split()[0]))
" "$(model)") | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
python_mypy)  # the type hints: the outside program passes mypy --strict, wrong uses are rejected
  cp -r "$src/bindings/python" "$out/pkg"; rm -rf "$out/pkg/tests"
  "$PYTHON" -m venv --system-site-packages "$out/venv"
  (cd "$out" && "$out/venv/bin/python" -m pip install -q --no-build-isolation --no-index "$out/pkg")
  mypy --cache-dir "$out/mypy-cache" --python-executable "$out/venv/bin/python" --strict "$outside/app.py"
  if mypy --cache-dir "$out/mypy-cache" --python-executable "$out/venv/bin/python" --strict "$outside/app_bad.py" > "$out/bad.txt"; then
    cat "$out/bad.txt"; echo "mypy accepted app_bad.py"; exit 1
  fi
  cat "$out/bad.txt"
  [ "$(grep -c ': error:' "$out/bad.txt")" -eq 3 ] || { echo "expected 3 errors"; exit 1; }
  ;;
rust)  # cargo, offline; moert-sys finds libmoert with pkg-config, the program's build.rs sets the rpath
  mkdir -p "$out/app"
  cp -r "$outside/rust/src" "$outside/rust/build.rs" "$out/app/"
  sed "s|@MOERT_RUST_CRATE@|$src/bindings/rust/moert|" "$outside/rust/Cargo.toml" > "$out/app/Cargo.toml"
  export CARGO_HOME=$build/bindings/rust/cargo-home CARGO_TARGET_DIR=$out/target CARGO_NET_OFFLINE=true
  "$CARGO" build --offline --quiet --manifest-path "$out/app/Cargo.toml"
  (cd / && "$out/target/debug/moert-outside" "$(model)") | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
rust_doc)  # cargo doc needs no library: nothing installed, pkg-config finds nothing
  export CARGO_HOME=$build/bindings/rust/cargo-home CARGO_TARGET_DIR=$out/target CARGO_NET_OFFLINE=true
  PKG_CONFIG_PATH=$out/none "$CARGO" doc --offline --quiet --no-deps --manifest-path "$src/bindings/rust/Cargo.toml"
  [ -f "$out/target/doc/moert/index.html" ] && [ -f "$out/target/doc/moert_sys/index.html" ]
  ;;
go)  # an outside module; the binding from the checkout (offline stand-in for go get); no CGO_* variables
  mkdir -p "$out/app"
  cp "$outside/go/main.go" "$out/app/"
  sed "s|@MOERT_GO_MODULE@|$src/bindings/go|" "$outside/go/go.mod" > "$out/app/go.mod"
  export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE=$build/bindings/go/gocache GOPATH=$out/gopath
  (cd "$out/app" && "$GO" build -o "$out/app/app" .)
  (cd / && "$out/app/app" "$(model)") | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
java)  # the installed jar alone: natives from its resources, no -Djava.library.path
  jar=$prefix/share/java/moert.jar
  "$JAVAC" -d "$out/classes" -cp "$jar" "$outside/java/App.java"
  (cd "$out/classes" && "$JAR" cf "$out/app.jar" App.class)
  (cd / && "$JAVA" -cp "$jar:$out/app.jar" App "$(model)") | tee "$out/run.txt"
  streamed "$out/run.txt"
  ;;
java_maven)  # the pom installs the jar into a Maven repository (Debian's plugins as the only remote)
  cat > "$out/settings.xml" <<XML
<settings><localRepository>$out/m2</localRepository><offline>false</offline>
<mirrors><mirror><id>debian</id><mirrorOf>*</mirrorOf><url>file:///usr/share/maven-repo</url></mirror></mirrors></settings>
XML
  "$MVN" -q -B -s "$out/settings.xml" install:install-file -Dfile="$prefix/share/java/moert.jar" \
    -DpomFile="$src/bindings/java/pom.xml" > "$out/mvn.log" 2>&1 || { tail -30 "$out/mvn.log"; exit 1; }
  m2jar=$out/m2/org/moert/moert/0.1.0/moert-0.1.0.jar
  [ -f "$m2jar" ] && [ -f "$out/m2/org/moert/moert/0.1.0/moert-0.1.0.pom" ]
  "$JAVAC" -d "$out/classes" -cp "$m2jar" "$outside/java/App.java"
  (cd / && "$JAVA" -cp "$m2jar:$out/classes" App "$(model)") > "$out/run.txt" 2>&1 ||
    { cat "$out/run.txt"; exit 1; }
  streamed "$out/run.txt"
  ;;
cpack)  # .deb packages (dependencies declared, the CUDA provider on its own) and a .tar.gz
  (cd "$out" && "${CPACK:-cpack}" --config "$build/CPackConfig.cmake" -G "DEB;TGZ" -B "$out" > "$out/cpack.log" 2>&1) ||
    { tail -30 "$out/cpack.log"; exit 1; }
  ls "$out"/*.deb "$out"/*.tar.gz
  deb() { ls "$out"/$1_*.deb; }
  main=$(dpkg-deb -c "$(deb moert)") dev=$(dpkg-deb -c "$(deb moert-dev)")
  for f in usr/lib/libmoert.so.0 usr/bin/moert usr/share/moert/models/moert-tiny-coder/config.json; do
    grep -q "$f" <<<"$main" || { echo "moert.deb lacks $f"; exit 1; }
  done
  for f in usr/include/moert/moert.h usr/lib/pkgconfig/moert.pc usr/lib/cmake/moert/moertConfig.cmake; do
    grep -q "$f" <<<"$dev" || { echo "moert-dev.deb lacks $f"; exit 1; }
  done
  if grep -E "libmoert_(cuda|mpi)" <<<"$main"; then echo "providers in the main package"; exit 1; fi
  depends=$(dpkg-deb -f "$(deb moert)" Depends); echo "moert: Depends: $depends"
  grep -q "libc6" <<<"$depends" && grep -q "libpcre2-8-0" <<<"$depends"
  if grep -Eiq "cuda|cublas|nccl|mpi" <<<"$depends"; then echo "the main package depends on CUDA/MPI"; exit 1; fi
  if [ "${MOERT_HAVE_CUDA:-OFF}" = ON ]; then
    cdeps=$(dpkg-deb -f "$(deb moert-cuda)" Depends); echo "moert-cuda: Depends: $cdeps"
    grep -q "moert (= " <<<"$cdeps" && grep -q "libcublas" <<<"$cdeps"
    grep -q "usr/lib/libmoert_cuda.so.0" <<<"$(dpkg-deb -c "$(deb moert-cuda)")"
  fi
  grep -q "lib/libmoert.so.0" <<<"$(tar tzf "$out"/moert-*.tar.gz)"
  ;;
*) echo "unknown case $case_"; exit 2 ;;
esac
echo "install.$case_: ok"
