// moert tokenize / detokenize / chat-template: the model's tokenizer from the command line.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {
namespace {

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// --tokenizer FILE, or the tokenizer.json (else tiktoken.model) of --model DIR (default: the shipped model).
moert_tokenizer* load_tokenizer(const Args& a) {
  std::string path =
      a.has("tokenizer") ? a.get("tokenizer") : a.get("model", default_model_dir()) + "/tokenizer.json";
  if (!a.has("tokenizer") && !std::filesystem::exists(path)) {
    const std::string tk = a.get("model", default_model_dir()) + "/tiktoken.model";
    if (std::filesystem::exists(tk)) path = tk;
  }
  moert_tokenizer* t = nullptr;
  check(moert_tokenizer_load(path.c_str(), nullptr, &t), "loading the tokenizer");
  return t;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  const Command cmd{"tokenize",
                    "usage: moert tokenize [--tokenizer FILE | -m|--model DIR] [--bos] [--no-special]\n"
                    "Text on stdin -> comma-separated token ids on stdout.\n",
                    {{"tokenizer"}, {"model", true, {"-m"}}, {"bos", false}, {"no-special", false}}};
  Args a(argc, argv, 2, cmd);
  moert_tokenizer* m = load_tokenizer(a);
  const std::string text = read_stdin();
  size_t n = 0;
  const int32_t parse_special = a.has("no-special") ? 0 : 1;
  const int32_t bos = a.has("bos") ? 1 : 0;
  check(moert_tokenize(m, text.data(), text.size(), bos, parse_special, nullptr, 0, &n), "tokenize");
  std::vector<int32_t> ids(n);
  check(moert_tokenize(m, text.data(), text.size(), bos, parse_special, ids.data(), ids.size(), &n),
        "tokenize");
  for (size_t i = 0; i < n; ++i) std::printf("%s%d", i ? "," : "", ids[i]);
  std::printf("\n");
  moert_tokenizer_free(m);
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  const Command cmd{
      "detokenize",
      "usage: moert detokenize [--tokenizer FILE | -m|--model DIR] [--skip-special]\n"
      "Token ids on stdin (separated by commas or spaces) -> text on stdout. An id outside the\n"
      "vocabulary is an error.\n",
      {{"tokenizer"}, {"model", true, {"-m"}}, {"skip-special", false}}};
  Args a(argc, argv, 2, cmd);
  moert_tokenizer* m = load_tokenizer(a);
  const std::string in = read_stdin();
  std::vector<int32_t> ids;
  std::string cur;
  for (char c : in + ",") {
    if (c == ',' || c == '\n' || c == ' ' || c == '\t' || c == '\r') {
      if (!cur.empty()) {
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(cur.c_str(), &end, 10);
        if (*end || errno == ERANGE || v < INT32_MIN || v > INT32_MAX) die("'" + cur + "' is not a token id");
        ids.push_back(static_cast<int32_t>(v));
        cur.clear();
      }
    } else {
      cur += c;
    }
  }
  size_t need = 0;
  const int32_t skip = a.has("skip-special") ? 1 : 0;
  check(moert_detokenize(m, ids.data(), ids.size(), skip, nullptr, 0, &need), "detokenize");
  std::vector<char> buf(need);
  check(moert_detokenize(m, ids.data(), ids.size(), skip, buf.data(), buf.size(), &need), "detokenize");
  std::fwrite(buf.data(), 1, need - 1, stdout);
  moert_tokenizer_free(m);
  return 0;
}

int cmd_chat_template(int argc, char** argv) {
  const Command cmd{
      "chat-template",
      "usage: moert chat-template [--tokenizer FILE | -m|--model DIR] [--no-generation-prompt]\n"
      "JSON chat messages on stdin -> the prompt text the chat template renders.\n",
      {{"tokenizer"}, {"model", true, {"-m"}}, {"no-generation-prompt", false}}};
  Args a(argc, argv, 2, cmd);
  moert_tokenizer* m = load_tokenizer(a);
  const std::string messages = read_stdin();
  size_t need = 0;
  const int32_t gen = a.has("no-generation-prompt") ? 0 : 1;
  check(moert_apply_chat_template(m, messages.c_str(), gen, nullptr, 0, &need), "chat template");
  std::vector<char> buf(need);
  check(moert_apply_chat_template(m, messages.c_str(), gen, buf.data(), buf.size(), &need), "chat template");
  std::fwrite(buf.data(), 1, need - 1, stdout);
  moert_tokenizer_free(m);
  return 0;
}

}  // namespace cli
