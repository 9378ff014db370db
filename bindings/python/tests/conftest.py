import json
import os
import struct

import pytest

MODEL_DIR = os.environ.get("MOERT_MODEL_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "samples", "models", "moert-tiny-coder")

# The default model plus a trained MTP module (speculative decoding).
MTP_MODEL_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "data", "moert-tiny-coder-mtp")
# A prompt of more than two 64-token KV pages (the prefix cache shares whole pages).
LONG_PROMPT = "def add(a, b):\n    return a + b\n\n\n" * 12

PROMPTS = ["def fibonacci(n):\n", "import numpy as np\n\n\ndef normalize(x):\n",
           "class Stack:\n    def __init__(self):\n", "# Read a CSV file and print the sum of each column\n"]


def read_reference(path):
    """A tiny safetensors reader: {name: list of int32} for the I32 tensors of reference.safetensors."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__" or e["dtype"] != "I32":
            continue
        s, t = e["data_offsets"]
        out[name] = list(struct.unpack("<%di" % ((t - s) // 4), data[8 + n + s:8 + n + t]))
    return out


@pytest.fixture(scope="session")
def reference():
    ref = read_reference(os.path.join(MODEL_DIR, "reference.safetensors"))
    return [(ref["prompt%d.ids" % k], ref["prompt%d.greedy" % k]) for k in range(4)]


@pytest.fixture(scope="session")
def model():
    import moert
    with moert.load(MODEL_DIR, threads=2) as m:
        yield m
