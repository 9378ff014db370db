// End-to-end CPU benchmark: prefill and decode tokens/s of a checkpoint (default: the shipped
// moert-tiny-coder), plus, for that model, a check that greedy decoding reproduces transformers' reference
// continuations (a speed figure only counts when the numbers are right), counted in tokens.
//
// usage: moert_model_bench [--model DIR | --generate-wide DIR] [--threads N] [--prefill 512] [--decode 128]
//                          [--compare-depth D] [--activations fp32|fp8] [--batch-invariant] [--repeat 5]
//                          [--streams N --stream-context 256] [--no-reference] [--no-warmup] [--help]
// Every figure is the median over --repeat runs, with the spread (min-max) beside it, after one untimed
// prefill (as llama-bench warms up; --no-warmup skips it). Decode runs after a
// D-token prompt (--compare-depth, default --prefill), as llama-bench's `-d D` measures `tg` at depth D.
// Decode also prints the weight bytes one token reads (every non-expert weight but the embedding table, plus
// top-k / n_routed of the routed experts), the bandwidth that gives, and the machine's streaming-read
// bandwidth measured in the same run (--threads threads summing a 1 GiB buffer, once before each decode
// run), and their ratio.
// --streams N: also N sequences of --stream-context tokens decoding together, one forward per step (the
// batched attention and MoE over every sequence), aggregate tokens/s. The bench uses only
// DeepseekNetwork::forward(steps, logits), so the same source builds against older trees for A/B runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"
#include "bench_stats.h"
#include "checkpoint/random_checkpoint.h"
#include "config/model_config.h"
#include "decode_weight_bytes.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

using namespace moert;

namespace {

const char* kUsage =
    "usage: moert_model_bench [--model DIR | --generate-wide DIR] [--threads N] [--prefill 512]\n"
    "                         [--decode 128] [--compare-depth D] [--activations fp32|fp8] "
    "[--batch-invariant]\n"
    "                         [--repeat 5] [--streams N] [--stream-context 256] [--no-reference]\n"
    "                         [--no-warmup] [--help]\n";

// Flags that take a value, and flags that do not.
const std::set<std::string> kValued = {"--model",          "--generate-wide", "--threads", "--prefill",
                                       "--decode",         "--activations",   "--repeat",  "--streams",
                                       "--stream-context", "--compare-depth"};
const std::set<std::string> kSwitches = {"--batch-invariant", "--no-reference", "--no-warmup", "--help",
                                         "-h"};

void check_args(int argc, char** argv) {
  bench::check_args(argc, argv, "moert_model_bench", kUsage, kValued, kSwitches);
}

using bench::arg;
using bench::Clock;
using bench::flag;
using bench::int_arg;
using bench::seconds_since;
using bench::Stats;
using bench::stats;

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Streaming read of `buf` by `threads` threads (each its contiguous share), GB/s. prefetch: also a software
// prefetch 4 KiB ahead (as the decode kernels do), the stronger of the two references.
double stream_read_gbs(const std::vector<uint64_t>& buf, int threads, bool prefetch = false) {
  std::vector<uint64_t> sink(static_cast<size_t>(threads) * 8);
  const size_t n = buf.size(), share = (n + threads - 1) / threads;
  auto body = [&](int t) {
    const uint64_t* p = buf.data() + std::min(n, t * share);
    const size_t cnt = std::min(n, (t + 1) * share) - std::min(n, t * share);
    uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (prefetch) {
      for (size_t i = 0; i + 8 <= cnt; i += 8) {
        __builtin_prefetch(p + i + 512);
        for (int j = 0; j < 8; ++j) a[j] ^= p[i + j];
      }
    } else {
      for (size_t i = 0; i + 8 <= cnt; i += 8)
        for (int j = 0; j < 8; ++j) a[j] ^= p[i + j];
    }
    for (int j = 0; j < 8; ++j) sink[t * 8 + j] = a[j];
  };
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back(body, t);
  body(0);
  for (auto& t : ts) t.join();
  const double s = seconds_since(t0);
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep ^ v;
  (void)keep;
  return n * 8.0 / s / 1e9;
}

// Greedy continuation of each reference prompt through prefill + decode. Per prompt: the tokens that match
// the reference before the first difference (as llama.cpp's comparison counts them), and the total.
struct RefResult {
  std::vector<int> matched, total;
};
RefResult check_reference(DeepseekNetwork& m, Backend& b, const std::string& dir) {
  RefResult r;
  const std::string path = dir + "/reference.safetensors";
  if (!std::filesystem::exists(path)) return r;
  SafetensorsFile ref(path);
  for (int p = 0; ref.tensors().count("prompt" + std::to_string(p) + ".ids"); ++p) {
    const TensorInfo& ti = ref.tensors().at("prompt" + std::to_string(p) + ".ids");
    const TensorInfo& tg = ref.tensors().at("prompt" + std::to_string(p) + ".greedy");
    std::vector<int32_t> ids(reinterpret_cast<const int32_t*>(ti.data),
                             reinterpret_cast<const int32_t*>(ti.data) + ti.numel());
    const int32_t* want = reinterpret_cast<const int32_t*>(tg.data);
    LatentCache cache(b, m.cache_layers(), m.config().kv_cache_width(), 64, 64 << 20);
    KvSequence kv(&cache);
    std::vector<float> logits(m.config().vocab_size);
    std::vector<SequenceStep> s{{&kv, ids.data(), static_cast<int64_t>(ids.size()), false}};
    m.forward(s, logits.data());
    int matched = 0;
    bool same = true;
    for (int64_t i = 0; i < tg.numel(); ++i) {
      int32_t t = argmax(logits);
      same &= t == want[i];
      matched += same;
      if (!same) break;  // the rest continues from another token
      std::vector<SequenceStep> one{{&kv, &t, 1, false}};
      m.forward(one, logits.data());
    }
    r.matched.push_back(matched);
    r.total.push_back(static_cast<int>(tg.numel()));
  }
  return r;
}

void print_figure(const char* label, const std::vector<double>& per_s, const char* tail) {
  const Stats s = stats(per_s);
  std::printf("%s: %.0f tokens/s median (min %.0f, max %.0f, %zu runs)%s\n", label, s.median, s.lo, s.hi,
              per_s.size(), tail);
}

}  // namespace

int main(int argc, char** argv) {
  check_args(argc, argv);
  std::string dir = arg(argc, argv, "--model", MOERT_DEFAULT_MODEL_DIR);
  const std::string wide = arg(argc, argv, "--generate-wide", "");
  const int threads = std::max(1, int_arg(argc, argv, "--threads", 2));
  const int prefill = std::max(1, int_arg(argc, argv, "--prefill", 512));
  const int decode = int_arg(argc, argv, "--decode", 128);
  const int depth = std::max(1, int_arg(argc, argv, "--compare-depth", prefill));
  const int repeat = std::max(1, int_arg(argc, argv, "--repeat", 5));
  const std::string act = arg(argc, argv, "--activations", "fp32");
  if (act != "fp32" && act != "fp8") {
    std::fprintf(stderr, "moert_model_bench: --activations is fp32 or fp8, got '%s'\n", act.c_str());
    return 2;
  }
  const bool fp8 = act == "fp8";
  const bool invariant = flag(argc, argv, "--batch-invariant");
  if (!wide.empty()) {
    if (!std::filesystem::exists(wide + "/config.json")) {
      RandomCheckpointSpec
          spec;  // hidden 2048, 64 experts of 1408 (8 groups, top-6), 2 shared, 1 dense + 2 MoE
      auto t0 = Clock::now();
      write_random_checkpoint(wide, spec);
      std::printf("generated %s in %.1f s\n", wide.c_str(), seconds_since(t0));
    }
    dir = wide;
  }
  const ModelConfig cfg = load_model_config(dir);
  auto backend = make_cpu_backend(threads, invariant);
  ModelOptions opts;
  opts.act_mode = fp8 ? ActMode::kFp8 : ActMode::kF32;
  auto store = std::make_shared<WeightStore>(dir);
  const double token_bytes = bench::decode_weight_bytes(*store, cfg);
  DeepseekNetwork model(cfg, store, *backend, opts);
  std::printf(
      "model %s: hidden %lld, %lld layers, %lld experts (top-%lld), %.1f M parameters; %d threads, %s "
      "activations%s\n",
      dir.c_str(), (long long)cfg.hidden_size, (long long)cfg.num_hidden_layers,
      (long long)cfg.n_routed_experts, (long long)cfg.num_experts_per_tok,
      model.weights().parameter_count / 1e6, threads, fp8 ? "fp8" : "fp32",
      invariant ? ", batch-invariant" : "");

  const int ntok = std::max(prefill, depth);
  std::vector<int32_t> tokens(ntok);
  uint32_t x = 12345;
  for (int32_t& t : tokens) t = static_cast<int32_t>((x = x * 1664525u + 1013904223u) >> 8) % cfg.vocab_size;
  LatentCache cache(
      *backend, model.cache_layers(), cfg.kv_cache_width(), 64,
      static_cast<int64_t>(ntok + decode + 64) * cfg.kv_cache_width() * 4 * model.cache_layers() + (1 << 20));
  std::vector<float> logits(cfg.vocab_size);

  std::vector<uint64_t> sbuf(size_t{1} << 27, 1);  // 1 GiB, touched
  for (size_t i = 0; i < sbuf.size(); i += 512) sbuf[i] = i;
  // One untimed prefill first, as llama-bench warms up: the first forward of a process faults the mapped
  // weights in and sizes the scratch buffers, which no later request pays.
  if (!flag(argc, argv, "--no-warmup")) {
    KvSequence kv(&cache);
    std::vector<SequenceStep> s{{&kv, tokens.data(), prefill, false}};
    model.forward(s, logits.data());
  }
  std::vector<double> pre_s, dec_s, bw, bwp;
  for (int r = 0; r < repeat; ++r) {
    {
      KvSequence kv(&cache);
      std::vector<SequenceStep> s{{&kv, tokens.data(), prefill, false}};
      auto t0 = Clock::now();
      model.forward(s, logits.data());
      pre_s.push_back(prefill / seconds_since(t0));
    }
    if (decode > 0) {
      KvSequence kv(&cache);
      {
        std::vector<SequenceStep> s{{&kv, tokens.data(), depth, false}};
        model.forward(s, logits.data());
      }
      bw.push_back(stream_read_gbs(sbuf, threads));
      bwp.push_back(stream_read_gbs(sbuf, threads, true));
      auto t0 = Clock::now();
      for (int i = 0; i < decode; ++i) {
        int32_t t = argmax(logits);
        std::vector<SequenceStep> one{{&kv, &t, 1, false}};
        model.forward(one, logits.data());
      }
      dec_s.push_back(decode / seconds_since(t0));
    }
  }
  char label[160];
  std::snprintf(label, sizeof label, "prefill %d tokens", prefill);
  print_figure(label, pre_s, "");
  if (decode > 0) {
    std::snprintf(label, sizeof label, "decode %d tokens after a %d-token prompt", decode, depth);
    const Stats d = stats(dec_s), b = stats(bw);
    char tail[96];
    std::snprintf(tail, sizeof tail, ", %.3f ms/token", 1e3 / d.median);
    print_figure(label, dec_s, tail);
    const double gbs = token_bytes * d.median / 1e9;
    const Stats bp = stats(bwp);
    std::printf(
        "decode weight reads: %.1f MB/token, %.2f GB/s; streaming read (%d threads, same run): %.2f GB/s "
        "median "
        "(min %.2f, max %.2f), with prefetch %.2f GB/s (min %.2f, max %.2f); decode / streaming = %.3f, "
        "decode / "
        "streaming with prefetch = %.3f\n",
        token_bytes / 1e6, gbs, threads, b.median, b.lo, b.hi, bp.median, bp.lo, bp.hi, gbs / b.median,
        gbs / bp.median);
  }
  const int streams = int_arg(argc, argv, "--streams", 0);
  if (streams > 0) {
    const int ctx = int_arg(argc, argv, "--stream-context", 256);
    const int steps = std::max(8, decode / 4);
    LatentCache scache(
        *backend, model.cache_layers(), cfg.kv_cache_width(), 64,
        static_cast<int64_t>(streams) * (ctx + steps + 64) * cfg.kv_cache_width() * 4 * model.cache_layers() +
            (1 << 20));
    std::vector<double> per_s;
    for (int r = 0; r < repeat; ++r) {
      std::vector<KvSequence> kv;
      for (int i = 0; i < streams; ++i) kv.emplace_back(&scache);
      std::vector<SequenceStep> pre;
      std::vector<std::vector<int32_t>> prompts(streams);
      for (int i = 0; i < streams; ++i) {
        prompts[i].assign(tokens.begin(), tokens.begin() + std::min<int>(ctx, ntok));
        prompts[i][0] = static_cast<int32_t>(i % cfg.vocab_size);  // distinct sequences
        pre.push_back({&kv[i], prompts[i].data(), static_cast<int64_t>(prompts[i].size()), false});
      }
      std::vector<float> many(static_cast<size_t>(streams) * cfg.vocab_size);
      model.forward(pre, many.data());
      std::vector<int32_t> next(streams);
      auto t0 = Clock::now();
      for (int k = 0; k < steps; ++k) {
        std::vector<SequenceStep> st;
        for (int i = 0; i < streams; ++i) {
          const float* l = many.data() + static_cast<size_t>(i) * cfg.vocab_size;
          next[i] = static_cast<int32_t>(std::max_element(l, l + cfg.vocab_size) - l);
          st.push_back({&kv[i], &next[i], 1, false});
        }
        model.forward(st, many.data());
      }
      per_s.push_back(streams * steps / seconds_since(t0));
    }
    std::snprintf(label, sizeof label, "decode with %d streams at context %d", streams,
                  std::min<int>(ctx, ntok));
    print_figure(label, per_s, "");
  }
  if (flag(argc, argv, "--no-reference")) return 0;
  const RefResult ref = check_reference(model, *backend, dir);
  if (ref.total.empty()) return 0;
  int ok = 0, all = 0;
  std::string per;
  for (size_t i = 0; i < ref.total.size(); ++i) {
    ok += ref.matched[i];
    all += ref.total[i];
    if (i) per += '/';
    per += std::to_string(ref.matched[i]);
  }
  std::printf(
      "reference greedy tokens reproduced (prefix before the first difference): %s of %d each, %d/%d%s\n",
      per.c_str(), ref.total[0], ok, all,
      fp8 ? " (the reference is fp32; fp8 activations are expected to drift)" : "");
  return !fp8 && ok != all ? 1 : 0;
}
