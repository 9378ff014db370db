#!/usr/bin/env python3
"""Streams a completion from the shipped moert-tiny-coder with the Python binding.

    PYTHONPATH=build/bindings/python python3 samples/python/stream_completion.py ["prompt"]
"""
import os
import sys

import moert

MODEL = os.environ.get("MOERT_MODEL_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                          "models", "moert-tiny-coder")


def main():
    prompt = sys.argv[1] if len(sys.argv) > 1 else "def fibonacci(n):\n"
    with moert.load(MODEL, progress=True) as model:
        print(prompt, end="", flush=True)
        with model.generate(prompt, max_tokens=48, ignore_eos=True) as stream:
            for token in stream:
                print(token.text, end="", flush=True)
            u = stream.usage
            print("\n--- finish: %s, %d prompt + %d generated tokens, %.1f tokens/s"
                  % (stream.finish_reason.name.lower(), u.prompt_tokens, u.generated_tokens, u.tokens_per_second))


if __name__ == "__main__":
    main()
