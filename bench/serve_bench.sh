#!/usr/bin/env bash
# moert serve's overhead: requests/s and mean time to first token at 1, 8 and 32 concurrent clients on the
# default model, through HTTP (moert serve + Node's fetch, streamed /v1/completions) and through the C API
# directly (moert_serve_capi_bench, one thread per client), and their ratio. A markdown table on stdout.
# usage: bench/serve_bench.sh [BUILD_DIR] [MAX_TOKENS] [REQUESTS_PER_CLIENT_AT_32]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
max_tokens=${2:-32}
per32=${3:-4}
model=$root/samples/models/moert-tiny-coder
out=$(mktemp -d "${TMPDIR:-/tmp}/moert_serve_bench_$$_XXXX")
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
"$build/samples/cli/moert-serve" --model "$model" --port 0 --threads 2 --max-batch 32 >"$out/serve.out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'http://' "$out/serve.out" && break; sleep 0.1; done
base=$(grep -o 'http://127.0.0.1:[0-9]*' "$out/serve.out")
echo "| clients | requests | HTTP req/s | C API req/s | req/s ratio | HTTP TTFT ms | C API TTFT ms | TTFT ratio |"
echo "|---|---|---|---|---|---|---|---|"
for c in 1 8 32; do
  per=$(( c == 1 ? 32 : c == 8 ? 8 : per32 ))
  node "$root/bench/serve_bench.mjs" "$base" moert-tiny-coder 1 2 "$max_tokens" >/dev/null  # warm-up
  h=$(node "$root/bench/serve_bench.mjs" "$base" moert-tiny-coder "$c" "$per" "$max_tokens")
  d=$("$build/bench/moert_serve_capi_bench" "$model" "$c" "$per" "$max_tokens" 2)
  python3 - "$h" "$d" <<'PY'
import json, sys
h, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {h['clients']} | {h['requests']} | {h['rps']:.1f} | {d['rps']:.1f} | {h['rps']/d['rps']:.2f} | "
      f"{h['ttft_ms']:.1f} | {d['ttft_ms']:.1f} | {h['ttft_ms']/d['ttft_ms']:.2f} |")
PY
done
