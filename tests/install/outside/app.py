"""An outside Python program using the installed moert package (type-checked by mypy --strict)."""
import sys

import moert


def main(model_dir: str) -> int:
    with moert.load(model_dir) as model:
        with model.generate("def fibonacci(n):\n", max_tokens=24, ignore_eos=True) as stream:
            n = 0
            for token in stream:
                print(token.text, end="", flush=True)
                n += 1
            usage: moert.Usage = stream.usage
        logits = model.logits([1, 2, 3])
        print("\nstreamed %d tokens (moert %s, logits %s, %.0f tokens/s)"
              % (n, moert.__version__, logits.shape, usage.tokens_per_second))
        return 0 if n > 0 and logits.shape == (3, model.vocab_size) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
