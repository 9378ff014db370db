// Serving features, measured through the C API in one run: the prefix cache's time to first token for a
// 2,000-token shared prefix plus a 20-token suffix (the first request against later ones, and with the
// cache off), and MTP speculative decoding's decode tokens/s with and without drafts at 1 and 16
// concurrent streams on the default model with its trained MTP module (tests/data/moert-tiny-coder-mtp).
// Runs alternate between the configurations and report medians with min-max.
//   moert_serving_bench [--threads N] [--rounds R] [--tokens N] [--model-mtp DIR] [--model DIR] [--no-prefix]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "moert/moert.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "moert_serving_bench: %s\n", m.c_str());
  std::exit(2);
}

void check(moert_status s, const char* what) {
  if (s != MOERT_OK) die(std::string(what) + ": " + moert_last_error());
}

moert_model* load(const std::string& dir, int threads,
                  const std::vector<std::pair<const char*, const char*>>& str,
                  const std::vector<std::pair<const char*, int64_t>>& ints) {
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  check(moert_options_set_int(o, "threads", threads), "threads");
  for (auto& [k, v] : str) check(moert_options_set_string(o, k, v), k);
  for (auto& [k, v] : ints) check(moert_options_set_int(o, k, v), k);
  moert_model* m = nullptr;
  check(moert_model_load(dir.c_str(), o, nullptr, nullptr, &m), "load");
  moert_options_free(o);
  return m;
}

struct Run {
  double ttft_s = 0, seconds = 0;
  int64_t generated = 0, drafted = 0, accepted = 0, forwards = 0, cached = 0;
};

Run generate(moert_model* m, const std::vector<int32_t>& prompt, int64_t max_tokens) {
  moert_options* g = nullptr;
  moert_options_create(&g);
  moert_options_set_int(g, "max_tokens", max_tokens);
  moert_options_set_float(g, "temperature", 0.0);
  moert_options_set_int(g, "ignore_eos", 1);
  moert_stream* s = nullptr;
  const auto t0 = Clock::now();
  check(moert_generate_tokens(m, prompt.data(), prompt.size(), g, &s), "generate");
  moert_options_free(g);
  Run r;
  for (;;) {
    int32_t tok = -1, fin = 0;
    check(moert_stream_next(s, -1, &tok, &fin), "next");
    if (tok >= 0 && r.generated++ == 0) r.ttft_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (fin != MOERT_FINISH_NONE) break;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  moert_stream_counter(s, "draft_tokens", &r.drafted);
  moert_stream_counter(s, "accepted_drafts", &r.accepted);
  moert_stream_counter(s, "decode_forwards", &r.forwards);
  moert_stream_counter(s, "cached_prompt_tokens", &r.cached);
  moert_stream_free(s);
  return r;
}

struct Stat {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  double median() const {
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
  std::string text(const char* fmt) const {
    char b[128];
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    std::snprintf(b, sizeof b, fmt, median(), *lo, *hi);
    return b;
  }
};

// Deterministic "text": token ids drawn from a fixed generator over the vocabulary's ordinary range.
std::vector<int32_t> tokens(int64_t n, uint32_t seed, int64_t vocab) {
  std::vector<int32_t> t(n);
  uint32_t x = seed;
  for (auto& id : t) {
    x = x * 1664525u + 1013904223u;
    id = static_cast<int32_t>(100 + (x >> 8) % static_cast<uint32_t>(vocab - 200));
  }
  return t;
}

// Decode tokens/s of `streams` concurrent greedy requests (tokens each), summed over the streams.
double decode_rate(moert_model* m, const std::vector<std::vector<int32_t>>& prompts, int64_t n, Run* total) {
  std::vector<Run> runs(prompts.size());
  std::vector<std::thread> th;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i)
    th.emplace_back([&, i] { runs[i] = generate(m, prompts[i], n); });
  for (auto& t : th) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double first = 0;
  for (const Run& r : runs) {
    first = std::max(first, r.ttft_s);
    total->generated += r.generated;
    total->drafted += r.drafted;
    total->accepted += r.accepted;
    total->forwards += r.forwards;
  }
  // After every stream's first token (the prefills): the decode phase only.
  return (static_cast<double>(total->generated) - static_cast<double>(prompts.size())) / (wall - first);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, rounds = 5;
  int64_t n_tokens = 128;
  bool prefix = true;
  std::string model = MOERT_DEFAULT_MODEL_DIR, model_mtp = MOERT_MTP_MODEL_DIR;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--threads")
      threads = std::atoi(value().c_str());
    else if (a == "--rounds")
      rounds = std::max(1, std::atoi(value().c_str()));
    else if (a == "--tokens")
      n_tokens = std::max(2, std::atoi(value().c_str()));
    else if (a == "--model")
      model = value();
    else if (a == "--model-mtp")
      model_mtp = value();
    else if (a == "--no-prefix")
      prefix = false;
    else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: moert_serving_bench [--threads N] [--rounds R] [--tokens N] [--model DIR] "
          "[--model-mtp DIR]\n");
      return 0;
    } else {
      die("unknown option " + a + " (see --help)");
    }
  }
  std::printf("threads %d, %d rounds, medians [min-max]\n\n", threads, rounds);

  // 1. Prefix cache: TTFT of a 2,000-token shared prefix + 20-token suffix.
  if (prefix) {
    moert_model* on = load(model, threads, {}, {{"prefix_cache", 1}, {"kv_cache_bytes", 512ll << 20}});
    moert_model* off = load(model, threads, {}, {{"prefix_cache", 0}, {"kv_cache_bytes", 512ll << 20}});
    int64_t vocab = 0;
    moert_model_info_int(on, "vocab_size", &vocab);
    Stat first, later, cold;
    int64_t cached = 0;
    for (int r = 0; r < rounds; ++r) {
      const std::vector<int32_t> prefix = tokens(2000, 1000 + r, vocab);  // a new prefix each round
      auto with_suffix = [&](uint32_t s) {
        std::vector<int32_t> p = prefix;
        const std::vector<int32_t> t = tokens(20, s, vocab);
        p.insert(p.end(), t.begin(), t.end());
        return p;
      };
      cold.add(generate(off, with_suffix(1), 1).ttft_s * 1e3);
      first.add(generate(on, with_suffix(1), 1).ttft_s * 1e3);
      const Run l = generate(on, with_suffix(2), 1);
      later.add(l.ttft_s * 1e3);
      cached = l.cached;
    }
    std::printf("prefix cache, 2000-token shared prefix + 20-token suffix, time to first token:\n");
    std::printf("  cache off          %s ms\n", cold.text("%.1f [%.1f-%.1f]").c_str());
    std::printf("  first request      %s ms\n", first.text("%.1f [%.1f-%.1f]").c_str());
    std::printf("  later request      %s ms  (%lld prompt tokens from the cache)\n",
                later.text("%.1f [%.1f-%.1f]").c_str(), static_cast<long long>(cached));
    std::printf("  first / later      %.1fx\n\n", first.median() / later.median());
    moert_model_free(on);
    moert_model_free(off);
  }

  // 2. MTP speculation: decode tokens/s with and without drafts, 1 and 16 streams.
  for (int streams : {1, 16}) {
    moert_model* spec = load(model_mtp, threads, {{"speculative", "on"}}, {{"max_batch", 16}});
    moert_model* plain = load(model_mtp, threads, {{"speculative", "off"}}, {{"max_batch", 16}});
    Stat with, without;
    Run totals;
    // A checkpoint without a tokenizer (a random one from make-model: only the cost side is meaningful,
    // its drafts are never right) gets random token ids.
    moert_tokenizer* tok = nullptr;
    if (moert_model_tokenizer(spec, &tok) != MOERT_OK) tok = nullptr;
    int64_t vocab = 0;
    moert_model_info_int(spec, "vocab_size", &vocab);
    // Python openings (the model's domain), a different one per stream and round.
    const char* heads[] = {"import os\nimport sys\n\n\ndef main(argv):\n",
                           "class Stack:\n    def __init__(self):\n",
                           "def fibonacci(n):\n",
                           "import numpy as np\n\n\ndef normalize(x):\n",
                           "# Read a CSV file and print the sum of each column\n",
                           "def parse_args():\n",
                           "class Config:\n    \"\"\"Settings.\"\"\"\n\n    def __init__(self, path):\n"};
    auto encode = [&](const std::string& text) {
      if (!tok) return tokens(12, static_cast<uint32_t>(text.size()), vocab);
      size_t n = 0;
      check(moert_tokenize(tok, text.data(), text.size(), -1, 1, nullptr, 0, &n), "tokenize");
      std::vector<int32_t> ids(n);
      check(moert_tokenize(tok, text.data(), text.size(), -1, 1, ids.data(), n, &n), "tokenize");
      return ids;
    };
    for (int r = 0; r < rounds; ++r) {
      std::vector<std::vector<int32_t>> prompts;
      for (int s = 0; s < streams; ++s) {
        const int k = (s + r) % 7;
        prompts.push_back(
            encode(std::string(heads[k]) + (s >= 7 ? "    # variant " + std::to_string(s) + "\n" : "")));
      }
      Run a, b;
      without.add(decode_rate(plain, prompts, n_tokens, &b));
      with.add(decode_rate(spec, prompts, n_tokens, &a));
      totals.drafted += a.drafted;
      totals.accepted += a.accepted;
      totals.forwards += a.forwards;
      totals.generated += a.generated - streams;
    }
    std::printf("MTP speculation, %d stream%s, %lld tokens each, decode tokens/s (all streams):\n", streams,
                streams > 1 ? "s" : "", static_cast<long long>(n_tokens));
    std::printf("  drafts off         %s\n", without.text("%.0f [%.0f-%.0f]").c_str());
    std::printf("  drafts on          %s  (%.0f%% of drafts accepted, %.2f tokens per forward)\n",
                with.text("%.0f [%.0f-%.0f]").c_str(),
                totals.drafted ? 100.0 * totals.accepted / totals.drafted : 0.0,
                totals.forwards ? static_cast<double>(totals.generated) / totals.forwards : 0.0);
    std::printf("  on / off           %.2fx\n\n", with.median() / without.median());
    if (tok) moert_tokenizer_free(tok);
    moert_model_free(spec);
    moert_model_free(plain);
  }
  return 0;
}
