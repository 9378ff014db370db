#!/usr/bin/env bash
# Side-by-side CPU benchmark of moert and llama.cpp on the same checkpoint, in interleaved rounds (issue 17):
# prefill and decode tokens/s of moert (FP8 as released, and its q4-expert copy) against llama.cpp's
# Q4_K_M and Q8_0 of the same weights, at the same thread count, prompt length and decode depth.
#
# usage: bench/llama_cpp/compare.sh --model DIR --work DIR [--threads 2] [--prefill 512] [--decode 128]
#                                   [--depth 512] [--rounds 5] [--moert-build DIR]
#
# llama.cpp comes from the npm registry (the only registry reachable here besides Debian): node-llama-cpp
# 3.22.1 carries the llama.cpp source of its release (v0.5.0) as a git bundle, which is built here for this CPU
# (GGML_NATIVE), only llama-bench and llama-quantize. The checkpoint goes to GGUF through to_gguf.py (numpy
# and llama.cpp's gguf-py), then llama-quantize makes Q4_K_M and Q8_0; `moert quantize --experts q4` makes
# moert's 4-bit copy. Each round runs the four configurations one after another, so a noisy minute hits
# them alike; the figures are medians over rounds with min-max, and the ratios are per round, then median.
# Where the checkpoint has reference.safetensors (the default model), it first scores fidelity: greedy
# tokens kept and teacher-forced top-1 / logit error of each 4-bit format against its own unquantised model
# (fidelity.py with greedy.cpp for llama.cpp, moert_q4_bench for moert).
# Needs: cmake, a C++ compiler, npm, Debian's python3-numpy and python3-yaml (gguf-py imports yaml).
set -euo pipefail

model="" work="" threads=2 prefill=512 decode=128 depth=512 rounds=5
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../../build"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --prefill) prefill="$2"; shift 2 ;;
    --decode) decode="$2"; shift 2 ;;
    --depth) depth="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --moert-build) build="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d' | cut -c3-; exit 0 ;;
    *) echo "compare.sh: unknown flag '$1'" >&2; sed -n '6,7p' "$0" | cut -c3- >&2; exit 2 ;;
  esac
done
[ -n "$model" ] && [ -n "$work" ] || { echo "compare.sh: --model and --work are required" >&2; exit 2; }
[ -f "$model/config.json" ] || { echo "compare.sh: $model has no config.json" >&2; exit 2; }
build="$(cd "$build" && pwd)"
moert_cli="$build/samples/cli/moert"
model_bench="$build/bench/moert_model_bench"
for f in "$moert_cli" "$model_bench" "$build/bench/moert_q4_bench"; do
  [ -x "$f" ] || { echo "compare.sh: $f not built (cmake --build $build --target moert moert_model_bench moert_q4_bench)" >&2; exit 2; }
done
mkdir -p "$work"
work="$(cd "$work" && pwd)"
py=/usr/bin/python3  # Debian's, with numpy (the python3 first on PATH may lack it)

# 1. llama.cpp, from node-llama-cpp's source bundle.
llama="$work/llama.cpp"
if [ ! -x "$llama/build/bin/llama-bench" ]; then
  if [ ! -d "$llama" ]; then
    (cd "$work" && npm i --silent --no-audit --no-fund --ignore-scripts -E node-llama-cpp@3.22.1 >/dev/null)
    git -c advice.detachedHead=false clone -q "$work/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$llama"
  fi
  echo "building llama.cpp (log: $work/llama-build.log)"
  { cmake -S "$llama" -B "$llama/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF &&
      cmake --build "$llama/build" -j2 --target llama-bench llama-quantize; } >"$work/llama-build.log" 2>&1 ||
    { echo "compare.sh: building llama.cpp failed (see $work/llama-build.log)" >&2; exit 1; }
fi
echo "llama.cpp: $(cat "$work/node_modules/node-llama-cpp/llama/llama.cpp.info.json" 2>/dev/null | tr -d '\n ' ||
  echo "$llama")"

# 2. The weights in each format.
name="$(basename "$model")"
f16="$work/$name-f16.gguf"
synthetic=()
[ -f "$model/tokenizer.json" ] || synthetic=(--synthetic-vocab)
# Each written under a temporary name and moved into place, so an interrupted run leaves nothing to reuse.
if [ ! -f "$f16" ]; then
  "$py" "$here/to_gguf.py" --model "$model" --out "$f16.tmp" --gguf-py "$llama/gguf-py" "${synthetic[@]}"
  mv "$f16.tmp" "$f16"
fi
for q in Q4_K_M Q8_0; do
  out="$work/$name-$q.gguf"
  if [ ! -f "$out" ]; then
    "$llama/build/bin/llama-quantize" "$f16" "$out.tmp" "$q" "$threads" >"$work/quantize-$q.log" 2>&1 ||
      { echo "compare.sh: llama-quantize $q failed (see $work/quantize-$q.log)" >&2; exit 1; }
    mv "$out.tmp" "$out"
  fi
done
q4="$work/$name-moert-q4"
if [ ! -f "$q4/config.json" ]; then
  rm -rf "$q4.tmp"
  "$moert_cli" quantize --model "$model" --out "$q4.tmp" --experts q4 >"$work/moert-quantize.log" 2>&1 ||
    { echo "compare.sh: moert quantize failed (see $work/moert-quantize.log)" >&2; exit 1; }
  mv "$q4.tmp" "$q4"
fi

# 3. Fidelity, where the checkpoint has reference.safetensors (the shipped default model does): llama.cpp's
# quantisations against its F16 GGUF, and moert's q4 copy against the FP8 original (moert_q4_bench), scored
# the same way.
if [ -f "$model/reference.safetensors" ]; then
  g="$work/llama_greedy"
  [ -x "$g" ] || c++ -O2 -std=c++17 -I"$llama/include" -I"$llama/ggml/include" "$here/greedy.cpp" \
    -L"$llama/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$llama/build/bin" -o "$g"
  echo "fidelity, llama.cpp:"
  "$py" "$here/fidelity.py" "$g" "$model/reference.safetensors" "$f16" "$work/$name-Q4_K_M.gguf" \
    "$work/$name-Q8_0.gguf"
  echo "fidelity, moert:"
  "$build/bench/moert_q4_bench" --model "$model" --threads "$threads" --no-speed | grep -v "round to nearest"
fi

# 4. Interleaved rounds.
log="$work/rounds.log"
: >"$log"
llama_run() {  # prints "pp tg" tokens/s
  "$llama/build/bin/llama-bench" -m "$1" -t "$threads" -p "$prefill" -n 0 -r 1 -o csv 2>/dev/null |
    awk -F, 'NR == 2 { v = $(NF - 1); gsub(/"/, "", v); printf "%s ", v }'  # avg_ts, next to last
  "$llama/build/bin/llama-bench" -m "$1" -t "$threads" -p 0 -n "$decode" -d "$depth" -r 1 -o csv 2>/dev/null |
    awk -F, 'NR == 2 { v = $(NF - 1); gsub(/"/, "", v); print v }'
}
moert_run() {
  "$model_bench" --model "$1" --threads "$threads" --prefill "$prefill" --decode "$decode" \
    --compare-depth "$depth" --repeat 1 --no-reference 2>/dev/null |
    awk 'function ts() { for (i = 1; i <= NF; i++) if ($i == "tokens/s") return $(i - 1) }
         /^prefill [0-9]+ tokens:/ { p = ts() } /^decode [0-9]+ tokens after/ { d = ts() } END { print p, d }'
}
record() {  # round, configuration, "prefill decode" figures: both must be numbers
  [[ "$3" =~ ^[0-9.]+\ [0-9.]+$ ]] || { echo "compare.sh: round $1: $2 gave no figures ('$3')" >&2; exit 1; }
  echo "round $1: $3 $2" | tee -a "$log"
}
for r in $(seq 1 "$rounds"); do
  record "$r" llama-q4km "$(llama_run "$work/$name-Q4_K_M.gguf")"
  record "$r" moert-fp8 "$(moert_run "$model")"
  record "$r" llama-q8 "$(llama_run "$work/$name-Q8_0.gguf")"
  record "$r" moert-q4 "$(moert_run "$q4")"
done

"$py" - "$log" "$threads" "$prefill" "$decode" "$depth" <<'EOF'
import sys, statistics as st
log, threads, prefill, decode, depth = sys.argv[1:]
runs = {}
for line in open(log):
    parts = line.split()
    rnd, pp, tg, cfg = int(parts[1][:-1]), float(parts[2]), float(parts[3]), parts[4]
    runs.setdefault(cfg, {})[rnd] = (pp, tg)
def med(xs, f=".1f"): return f"{st.median(xs):{f}} [{min(xs):{f}}-{max(xs):{f}}]"
print(f"\n{threads} threads, prefill {prefill} tokens, decode {decode} tokens at depth {depth}; "
      f"median [min-max] over {len(runs['moert-fp8'])} interleaved rounds, tokens/s:")
print("| configuration | prefill | decode |\n|---|---|---|")
for cfg in ("moert-fp8", "moert-q4", "llama-q8", "llama-q4km"):
    print(f"| {cfg} | {med([v[0] for v in runs[cfg].values()])} | {med([v[1] for v in runs[cfg].values()])} |")
print("\nper-round ratios, median [min-max]:\n| ratio | prefill | decode |\n|---|---|---|")
for a, b in (("moert-fp8", "llama-q8"), ("moert-fp8", "llama-q4km"), ("moert-q4", "llama-q4km")):
    rs = [r for r in runs[a] if r in runs[b]]
    pr = [runs[a][r][0] / runs[b][r][0] for r in rs]
    tr = [runs[a][r][1] / runs[b][r][1] for r in rs]
    print(f"| {a} / {b} | {med(pr, '.2f')} | {med(tr, '.2f')} |")
EOF
