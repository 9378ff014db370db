// libFuzzer target for the tokenizer. The tokenizer.json comes from the environment variable
// MOERT_TOKENIZER_JSON, else from the compile definition MOERT_FUZZ_TOKENIZER_JSON (a path); its
// tokenizer_config.json is looked up next to it.
// The same checks run on the tiktoken tokenizer of MOERT_FUZZ_TIKTOKEN_MODEL (tests/data/tokenizer-tiktoken).
// Checks, for any input bytes: encode never crashes and gives ids in range; for valid UTF-8,
// decode(encode(s)) == s (with and without parsing special tokens); streaming decode equals decode and
// never emits broken UTF-8; the chat template either renders or throws moert::Error; the input read as a
// tiktoken.model either loads or throws moert::Error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace {

const moert::Tokenizer& tokenizer() {
  static const std::unique_ptr<moert::Tokenizer> tok = [] {
    const char* env = std::getenv("MOERT_TOKENIZER_JSON");
    std::string path = env && *env ? env : "";
#ifdef MOERT_FUZZ_TOKENIZER_JSON
    if (path.empty()) path = MOERT_FUZZ_TOKENIZER_JSON;
#endif
    if (path.empty()) {
      std::fprintf(stderr, "fuzz_tokenizer: set MOERT_TOKENIZER_JSON to a tokenizer.json\n");
      std::abort();
    }
    const size_t slash = path.find_last_of('/');
    const std::string config =
        (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "tokenizer_config.json";
    std::FILE* f = std::fopen(config.c_str(), "rb");
    if (f) std::fclose(f);
    return std::make_unique<moert::Tokenizer>(moert::Tokenizer::load(path, f ? config : std::string()));
  }();
  return *tok;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", what);
    std::abort();
  }
}

#ifdef MOERT_FUZZ_TIKTOKEN_MODEL
const std::string kTiktokenConfig =
    std::string(MOERT_FUZZ_TIKTOKEN_MODEL)
        .substr(0, std::string(MOERT_FUZZ_TIKTOKEN_MODEL).find_last_of('/') + 1) +
    "tokenizer_config.json";

// The tokenizer of tests/data/tokenizer-tiktoken.
const moert::Tokenizer* tiktoken_tokenizer() {
  static const std::unique_ptr<moert::Tokenizer> tok =
      std::make_unique<moert::Tokenizer>(moert::Tokenizer::load(MOERT_FUZZ_TIKTOKEN_MODEL, kTiktokenConfig));
  return tok.get();
}
#endif

void check_tokenizer(const moert::Tokenizer& tok, const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = moert::tok::utf8_valid(text);
  for (bool parse_special : {true, false}) {
    const std::vector<int32_t> ids = tok.encode(text, false, parse_special);
    for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size(), "id out of range");
    const std::string back = tok.decode(ids, false);
    check(moert::tok::utf8_valid(back), "decode gave invalid UTF-8");
    if (valid) check(back == text, "decode(encode(s)) != s");
    moert::StreamDecoder sd(tok, false);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = sd.push(id);
      check(moert::tok::utf8_valid(piece), "stream decoder emitted invalid UTF-8");
      streamed += piece;
    }
    streamed += sd.finish();
    check(streamed == back, "streamed decode != decode");
  }
  // Arbitrary ids (from the input bytes) decode to valid UTF-8, streamed or not.
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 3 <= size; i += 3)
    raw.push_back(
        static_cast<int32_t>((data[i] | (data[i + 1] << 8) | (data[i + 2] << 16)) % (tok.vocab_size() + 8)));
  const std::string d = tok.decode(raw, true);
  check(moert::tok::utf8_valid(d), "decode of random ids gave invalid UTF-8");
  moert::StreamDecoder sd(tok, true);
  std::string s;
  for (int32_t id : raw) s += sd.push(id);
  s += sd.finish();
  check(s == d, "streamed decode of random ids != decode");
  // The chat template on the input as JSON: renders or throws moert::Error, nothing else.
  try {
    (void)tok.apply_chat_template(std::string(text), size % 2 == 0);
  } catch (const moert::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_tokenizer(tokenizer(), data, size);
#ifdef MOERT_FUZZ_TIKTOKEN_MODEL
  if (const moert::Tokenizer* tk = tiktoken_tokenizer()) {
    check_tokenizer(*tk, data, size);
    // The input as a tiktoken.model (with the test tokenizer's config): loads or throws moert::Error.
    static const std::string config = [] {
      std::string c;
      if (std::FILE* f = std::fopen(kTiktokenConfig.c_str(), "rb")) {
        char buf[4096];
        for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) c.append(buf, n);
        std::fclose(f);
      }
      return c;
    }();
    try {
      const moert::Tokenizer t = moert::Tokenizer::from_tiktoken(
          std::string_view(reinterpret_cast<const char*>(data), size), config);
      for (int32_t id : t.encode("Hello 中文 <|im_end|>", false, true))
        check(id >= 0 && id < t.vocab_size(), "id out of range");
    } catch (const moert::Error&) {
    }
    // The input as tokenizer_config.json, with the 256 byte ranks as the model: loads or throws moert::Error,
    // and a loaded one renders its chat template or throws moert::Error.
    static const std::string bytes_model = [] {
      static const char* const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      std::string m;
      for (int b = 0; b < 256; ++b) {
        m += b64[b >> 2];
        m += b64[(b & 3) << 4];
        m += "== " + std::to_string(b) + "\n";
      }
      return m;
    }();
    try {
      const moert::Tokenizer t = moert::Tokenizer::from_tiktoken(
          bytes_model, std::string_view(reinterpret_cast<const char*>(data), size));
      for (int32_t id : t.encode("Hi <|im_end|>", false, true))
        check(id >= 0 && id < t.vocab_size(), "id out of range");
      try {
        (void)t.apply_chat_template(R"([{"role": "user", "content": "x"}])", true);
      } catch (const moert::Error&) {
      }
    } catch (const moert::Error&) {
    }
  }
#endif
  return 0;
}
