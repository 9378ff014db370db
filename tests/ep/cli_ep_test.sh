#!/usr/bin/env bash
# cli_ep_test.sh MOERT MODEL_DIR NP: `moert run` greedy on MODEL_DIR in one process, then under
# `mpirun -np NP ... --ep-size NP` (experts spread over NP processes, every rank running the prompt, rank 0
# printing): the two texts must be equal. Exit code 77 (skipped) when mpirun is not found.
# NP = inproc: the EP code path in one process (--ep-transport inproc, a one-rank group; no MPI needed).
set -u
moert=$1; model=$2; np=$3
if [ "$np" = inproc ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  printf 'def fibonacci(n):\n' > "$tmp/prompt.txt"
  args=(run --model "$model" --prompt-file "$tmp/prompt.txt" --max-tokens 48 --ignore-eos --temperature 0 --quiet --threads 1)
  "$moert" "${args[@]}" > "$tmp/single.txt" || { echo "single-process run failed"; exit 1; }
  for overlap in --ep-overlap "" "--no-ep-overlap --batch-invariant"; do
    "$moert" "${args[@]}" --ep-transport inproc --eplb-interval 8 --ep-redundant 1 --ep-max-ranks 1 $overlap > "$tmp/ep.txt" \
      || { echo "EP run $overlap failed"; exit 1; }
    cat "$tmp/ep.txt"
    cmp -s "$tmp/single.txt" "$tmp/ep.txt" || { echo "FAILED $overlap: the texts differ"; diff "$tmp/single.txt" "$tmp/ep.txt"; exit 1; }
  done
  echo "PASSED: same text (with and without the overlap)"; exit 0
fi
MPIRUN=${MPIRUN:-$(command -v mpirun || true)}
if [ -z "$MPIRUN" ]; then
  echo "SKIP: mpirun not found (install openmpi-bin)"; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'def fibonacci(n):\n' > "$tmp/prompt.txt"
args=(run --model "$model" --prompt-file "$tmp/prompt.txt" --max-tokens 48 --ignore-eos --temperature 0 --quiet --threads 1)
"$moert" "${args[@]}" > "$tmp/single.txt" || { echo "single-process run failed"; exit 1; }
echo "--- single process:"; cat "$tmp/single.txt"
[ -s "$tmp/single.txt" ] || { echo "FAILED: empty output"; exit 1; }
for overlap in --ep-overlap --no-ep-overlap; do
  "$MPIRUN" --allow-run-as-root --oversubscribe -np "$np" "$moert" "${args[@]}" --ep-size "$np" $overlap > "$tmp/ep.txt" \
    || { echo "EP run under mpirun ($overlap) failed"; cat "$tmp/ep.txt"; exit 1; }
  echo "--- EP over $np MPI ranks (rank 0) $overlap:"; cat "$tmp/ep.txt"
  if ! cmp -s "$tmp/single.txt" "$tmp/ep.txt"; then
    echo "FAILED: the texts differ"; diff "$tmp/single.txt" "$tmp/ep.txt"; exit 1
  fi
done
# A KV image made in one process without EP continues under EP (every rank resumes it, rank 0 prints): the
# continuation of `moert run --resume` in one process.
"$moert" prefill --model "$model" --prompt-file "$tmp/prompt.txt" --out "$tmp/image.kv" --threads 1 --quiet \
  || { echo "prefill failed"; exit 1; }
resume=(run --model "$model" --resume "$tmp/image.kv" --max-tokens 24 --ignore-eos --temperature 0 --quiet --threads 1)
"$moert" "${resume[@]}" > "$tmp/resumed.txt" || { echo "single-process resume failed"; exit 1; }
"$MPIRUN" --allow-run-as-root --oversubscribe -np "$np" "$moert" "${resume[@]}" --ep-size "$np" > "$tmp/ep_resumed.txt" \
  || { echo "resume under mpirun failed"; cat "$tmp/ep_resumed.txt"; exit 1; }
[ -s "$tmp/resumed.txt" ] || { echo "FAILED: empty resumed output"; exit 1; }
if ! cmp -s "$tmp/resumed.txt" "$tmp/ep_resumed.txt"; then
  echo "FAILED: the resumed texts differ"; diff "$tmp/resumed.txt" "$tmp/ep_resumed.txt"; exit 1
fi
echo "--- resumed under EP over $np ranks: same continuation"
if [ "$np" = 2 ]; then
  # Ranks started with different settings (MPMD: rank 1 without the overlap) fail together, naming it.
  if "$MPIRUN" --allow-run-as-root --oversubscribe -np 1 "$moert" "${args[@]}" --ep-size 2 --ep-overlap : \
       -np 1 "$moert" "${args[@]}" --ep-size 2 --no-ep-overlap > "$tmp/mixed.txt" 2>&1; then
    echo "FAILED: ranks with different ep_overlap ran"; cat "$tmp/mixed.txt"; exit 1
  fi
  grep -q "disagree on ep_overlap" "$tmp/mixed.txt" || { echo "FAILED: no clear error"; cat "$tmp/mixed.txt"; exit 1; }
  echo "--- mixed settings: $(grep -m1 -o 'expert-parallel ranks disagree on [a-z_]*' "$tmp/mixed.txt")"
fi
echo "PASSED: same text (with and without the overlap)"
