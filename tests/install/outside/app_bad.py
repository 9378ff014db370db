"""Wrong uses of moert's API that mypy must reject (the type hints are real)."""
import moert

model = moert.load("model")
text: str = model.generate("prompt").usage
model.generate("prompt", max_tokens="24")
moert.Tokenizer.load("tokenizer.json").encode(42)
