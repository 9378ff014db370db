#!/usr/bin/python3
"""llama.cpp's quantisations scored as moert_q4_bench scores moert's q4 copy (compare.sh runs both):
per reference prompt, the greedy tokens kept before the first difference from the reference continuation;
then, teacher-forced over prompt + reference, top-1 agreement with the unquantised model's logits (here the
F16 GGUF) and the max / mean absolute logit error, over the positions that predict output.

usage: fidelity.py LLAMA_GREEDY REFERENCE.safetensors ORIGINAL.gguf QUANT.gguf [QUANT.gguf ...]
"""
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def reference(path):
    with open(path, "rb") as h:
        n = struct.unpack("<Q", h.read(8))[0]
        header = json.loads(h.read(n))
        data = h.read()
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            a, b = v["data_offsets"]
            out[k] = np.frombuffer(data[a:b], dtype={"I32": np.int32, "I64": np.int64}[v["dtype"]]).tolist()
    prompts = []
    while f"prompt{len(prompts)}.ids" in out:
        k = len(prompts)
        prompts.append((out[f"prompt{k}.ids"], out[f"prompt{k}.greedy"]))
    return prompts


def ids_arg(ids):
    return ",".join(map(str, ids))


def logits(tool, model, seq, tmp):
    out = Path(tmp) / "logits.bin"
    subprocess.run([tool, model, "logits", str(out), ids_arg(seq)], check=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(seq), -1)


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__.strip().split("\n\n")[-1])
    tool, ref, original, quants = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    prompts = reference(ref)
    with tempfile.TemporaryDirectory() as tmp:
        base = [logits(tool, original, p + g, tmp) for p, g in prompts]
        for q in [original] + quants:
            n = max(len(g) for _, g in prompts)
            lines = subprocess.run([tool, q, "greedy", str(n)] + [ids_arg(p) for p, _ in prompts],
                                   check=True, capture_output=True, text=True).stdout.split()
            kept = []
            for (p, g), line in zip(prompts, lines):
                got = list(map(int, line.split(",")))
                k = 0
                while k < len(g) and got[k] == g[k]:
                    k += 1
                kept.append(k)
            top1 = positions = 0
            max_err = sum_err = 0.0
            for (p, g), lb in zip(prompts, base):
                lq = logits(tool, q, p + g, tmp)
                sl = slice(len(p) - 1, len(p) + len(g))
                a, b = lb[sl], lq[sl]
                positions += a.shape[0]
                top1 += int((a.argmax(1) == b.argmax(1)).sum())
                e = np.abs(a.astype(np.float64) - b)
                max_err = max(max_err, float(e.max()))
                sum_err += float(e.sum())
            mean_err = sum_err / (positions * base[0].shape[1])
            print(f"{Path(q).name}: greedy tokens kept {'/'.join(map(str, kept))} of {n} ({sum(kept)}); "
                  f"top-1 agreement with {Path(original).name} {top1}/{positions} "
                  f"({100.0 * top1 / positions:.1f}%); logit error max {max_err:.4f} mean {mean_err:.5f}")


if __name__ == "__main__":
    main()
