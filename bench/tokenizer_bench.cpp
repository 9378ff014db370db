// Encode throughput of moert's tokenizer on a multi-megabyte mixed corpus (the same corpus and procedure as
// bench/tokenizer_bench.js, which measures Hugging Face `tokenizers`):
//   documents = the "text" of every case in tests/data/tokenizer-corpus/{deepseek_v3,tiny_coder,v2style,
//   gpt2style}_cases.jsonl, in that order, the whole list repeated 11 times (~8.3 MB, ~33k documents:
//   prose in many scripts, code, emoji, whitespace runs, long words); each document encoded on its own with
//   the DeepSeek-V3 tokenizer (or the tokenizer file given: tokenizer.json or tiktoken.model, with the
//   tokenizer_config.json beside it; bench/tiktoken_bench.mjs measures tiktoken on the same corpus), no BOS,
//   special tokens parsed.
// Usage: moert_tokenizer_bench [repo_root] [threads] [tokenizer file]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"

#ifndef MOERT_SOURCE_DIR
#define MOERT_SOURCE_DIR "."
#endif

int main(int argc, char** argv) {
  const std::string root = argc > 1 ? argv[1] : MOERT_SOURCE_DIR;
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1;
  const std::string tokfile = argc > 3 ? argv[3] : root + "/tests/data/tokenizer-deepseek-v3/tokenizer.json";
  const std::string tokdir = tokfile.substr(0, tokfile.find_last_of('/') + 1);
  std::vector<std::string> unique;
  for (const char* f : {"deepseek_v3_cases.jsonl", "tiny_coder_cases.jsonl", "v2style_cases.jsonl",
                        "gpt2style_cases.jsonl"}) {
    std::ifstream in(root + "/tests/data/tokenizer-corpus/" + f);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", f);
      return 1;
    }
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) unique.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  }
  std::vector<const std::string*> docs;
  size_t bytes = 0;
  for (int r = 0; r < 11; ++r)
    for (const auto& s : unique) {
      docs.push_back(&s);
      bytes += s.size();
    }

  const auto t0 = std::chrono::steady_clock::now();
  const moert::Tokenizer tok = moert::Tokenizer::load(tokfile, tokdir + "tokenizer_config.json");
  const auto t1 = std::chrono::steady_clock::now();

  auto run = [&](int nthreads, size_t* tokens) {
    std::atomic<size_t> next{0}, total{0};
    auto work = [&] {
      size_t local = 0;
      for (size_t i; (i = next.fetch_add(1)) < docs.size();)
        local += tok.encode(*docs[i], false, true).size();
      total += local;
    };
    const auto a = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 1; t < nthreads; ++t) ts.emplace_back(work);
    work();
    for (auto& t : ts) t.join();
    const auto b = std::chrono::steady_clock::now();
    *tokens = total;
    return std::chrono::duration<double>(b - a).count();
  };
  size_t tokens = 0;
  // First pass: cold BPE cache on the first of the 11 copies.
  const double cold = run(1, &tokens);
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) best = std::min(best, run(threads, &tokens));
  std::printf("moert tokenizer %s: load %.0f ms\n", tokfile.c_str(),
              std::chrono::duration<double, std::milli>(t1 - t0).count());
  std::printf("corpus: %zu documents, %.2f MB, %zu tokens\n", docs.size(), bytes / 1e6, tokens);
  std::printf("encode, 1 thread, first run: %.1f MB/s\n", bytes / 1e6 / cold);
  std::printf("encode, %d thread(s), best of 3: %.1f MB/s (%.2f s, %.2f Mtokens/s)\n", threads,
              bytes / 1e6 / best, best, tokens / 1e6 / best);
  return 0;
}
