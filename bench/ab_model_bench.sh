#!/usr/bin/env bash
# A/B of two moert_model_bench binaries (e.g. an older build and this one) on the same machine, runs
# alternated (old, new, old, new, ...) so drift hits both alike; prints each run's figures and the median
# ratio new/old per figure.
#   bench/ab_model_bench.sh OLD_BIN NEW_BIN ROUNDS [moert_model_bench arguments...]
set -euo pipefail
old=$1 new=$2 rounds=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((r = 0; r < rounds; ++r)); do
  for side in old new; do
    bin=$old
    [ "$side" = new ] && bin=$new
    "$bin" "$@" >"$tmp/$side.$r.txt" 2>&1 || true
    grep -E "tokens/s" "$tmp/$side.$r.txt" | sed "s/^/$side round $r: /"
  done
done
# figure lines look like "<label>: N tokens/s ..."; compare the medians per label
python3 - "$tmp" "$rounds" <<'PY'
import re, statistics, sys, glob
tmp, rounds = sys.argv[1], int(sys.argv[2])
def figures(side):
    out = {}
    for r in range(rounds):
        for line in open(f"{tmp}/{side}.{r}.txt"):
            m = re.match(r"(.*?): (\d+) tokens/s", line)
            if m: out.setdefault(m.group(1), []).append(float(m.group(2)))
    return out
o, n = figures("old"), figures("new")
for k in o:
    if k in n:
        mo, mn = statistics.median(o[k]), statistics.median(n[k])
        print(f"{k}: old median {mo:.0f}, new median {mn:.0f} tokens/s, ratio new/old {mn / mo:.3f}")
PY
