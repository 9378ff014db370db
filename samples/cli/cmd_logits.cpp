// moert logits: evaluate a token sequence and write its logits, either in one forward (the prompt
// path) or as a prefill of K tokens followed by one token at a time through the KV cache (the decode path).
#include <cstdio>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {
namespace {

std::vector<int32_t> parse_tokens(const std::string& s) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string t = s.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ')) t.erase(t.begin());
    while (!t.empty() && (t.back() == ' ')) t.pop_back();
    if (t.empty()) die("--tokens: empty token in '" + s + "'");
    char* end = nullptr;
    long long v = std::strtoll(t.c_str(), &end, 10);
    if (*end || v < INT32_MIN || v > INT32_MAX) die("--tokens: '" + t + "' is not a token id");
    out.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  return out;
}

}  // namespace

int cmd_logits(int argc, char** argv) {
  const Command cmd{"logits",
                    "usage: moert logits [-m|--model DIR] --tokens 5,17,3 --out FILE [--decode-from K]\n"
                    "                    [--activations fp32|fp8] [-t|--threads N] [--device cpu|cuda]\n"
                    "Write float32 logits [tokens, vocab] (little-endian, row-major): one forward over all\n"
                    "tokens, or with --decode-from K a prefill of K tokens then one token at a time.\n",
                    {{"model", true, {"-m"}},
                     {"tokens"},
                     {"out", true, {"-o"}},
                     {"decode-from"},
                     {"activations"},
                     {"threads", true, {"-t"}},
                     {"device"}}};
  Args a(argc, argv, 2, cmd);
  const std::string dir = a.get("model", default_model_dir());
  const std::vector<int32_t> tokens = parse_tokens(a.require("tokens"));
  const std::string out_path = a.require("out");
  const long long decode_from = a.get_int("decode-from", -1);
  if (a.has("decode-from") && (decode_from < 0 || decode_from > static_cast<long long>(tokens.size())))
    die("--decode-from must be between 0 and the number of tokens");

  moert_options* opts = nullptr;
  check(moert_options_create(&opts), "options");
  if (a.has("activations"))
    check(moert_options_set_string(opts, "activations", a.get("activations").c_str()), "--activations");
  if (a.has("threads")) check(moert_options_set_int(opts, "threads", a.get_int("threads", 0)), "--threads");
  if (a.has("device")) check(moert_options_set_string(opts, "device", a.get("device").c_str()), "--device");
  // Enough cache for this sequence whatever the default budget.
  moert_model* model = nullptr;
  check(moert_model_load(dir.c_str(), opts, nullptr, nullptr, &model), "loading the model");
  moert_options_free(opts);
  int64_t vocab = 0;
  check(moert_model_info_int(model, "vocab_size", &vocab), "model info");

  moert_session* session = nullptr;
  check(moert_session_create(model, &session), "session");
  const size_t n = tokens.size();
  std::vector<float> logits(n * vocab);
  const size_t prefill = decode_from < 0 ? n : static_cast<size_t>(decode_from);
  if (prefill > 0)
    check(moert_session_eval(session, tokens.data(), prefill, 1, logits.data(), prefill * vocab), "eval");
  for (size_t i = prefill; i < n; ++i)
    check(moert_session_eval(session, &tokens[i], 1, 0, logits.data() + i * vocab, vocab), "eval");
  moert_session_free(session);
  moert_model_free(model);

  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!f) die("cannot open '" + out_path + "' for writing");
  // float32 little-endian: the host byte order on every platform moert supports (x86-64, aarch64).
  const size_t written = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
  if (written != logits.size() || std::fclose(f) != 0) die("writing '" + out_path + "' failed");
  return 0;
}

}  // namespace cli
