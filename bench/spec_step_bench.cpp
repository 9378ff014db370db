// What one speculative decode step costs, in plain decode steps, and so the most MTP speculation can gain.
// A step that drafts D tokens is one main forward over 1 + D tokens (the verify) plus the MTP layer's
// forwards (one over the kept tokens, then one per chained draft after the first). At acceptance a, one draft
// emits 1 + a tokens per step, so speculation gains at most (1 + a) plain steps' worth of tokens per step
// cost, the ceiling printed below (the engine's host work, sampling and acceptance come on top). Timed on
// one sequence at a fixed context (each timed forward is rolled back), medians of --rounds rounds of --reps
// steps each, all in this run.
//
// usage: moert_spec_step_bench [--model DIR] [--threads 2] [--context 200] [--reps 200] [--rounds 5]
//                              [--help]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"
#include "config/model_config.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "weights/weight_store.h"

using namespace moert;
using namespace moert::bench;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage =
    "usage: moert_spec_step_bench [--model DIR] [--threads 2] [--context 200] [--reps 200] [--rounds 5]\n"
    "  the cost of a verify forward (2 and 3 tokens) and of the MTP layer, in plain decode steps, and the\n"
    "  speed-up ceiling of one draft at 50-100% acceptance\n";

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  check_args(argc, argv, "moert_spec_step_bench", kUsage,
             {"--model", "--threads", "--context", "--reps", "--rounds"}, {});
  const std::string dir = arg(argc, argv, "--model", MOERT_MTP_MODEL_DIR);
  const int threads = std::max(1, int_arg(argc, argv, "--threads", 2));
  const int ctx = std::max(1, int_arg(argc, argv, "--context", 200));
  const int reps = std::max(1, int_arg(argc, argv, "--reps", 200));
  const int rounds = std::max(1, int_arg(argc, argv, "--rounds", 5));

  const ModelConfig cfg = load_model_config(dir);
  if (cfg.num_nextn_predict_layers <= 0) {
    std::fprintf(stderr, "moert_spec_step_bench: %s has no MTP layer\n", dir.c_str());
    return 2;
  }
  auto backend = make_cpu_backend(threads);
  auto store = std::make_shared<WeightStore>(dir);
  DeepseekNetwork model(cfg, store, *backend, ModelOptions{});
  LatentCache cache(
      *backend, model.cache_layers(), cfg.kv_cache_width(), 64,
      static_cast<int64_t>(ctx + 64) * cfg.kv_cache_width() * 4 * model.cache_layers() + (1 << 20));
  KvSequence kv(&cache);
  std::vector<int32_t> tokens(ctx + 4);
  uint32_t x = 12345;
  for (int32_t& t : tokens) t = static_cast<int32_t>((x = x * 1664525u + 1013904223u) >> 8) % cfg.vocab_size;
  std::vector<float> logits(static_cast<size_t>(cfg.vocab_size) * 4);
  {
    // The prompt through the main model, then through the MTP layer (as the engine fills its cache slot
    // during prefill), so both attend over a full context.
    SequenceStep st{&kv, tokens.data(), ctx, false};
    StepBatch batch = model.make_batch({st});
    Tensor post_norm;
    model.forward(batch, [&](int64_t layer, const Tensor& h) {
      if (layer == cfg.num_hidden_layers) post_norm = h;
    });
    SequenceStep m{&kv, tokens.data() + 1, ctx, false, true};
    model.mtp_forward({m}, {0}, {0}, post_norm);
  }

  // The main forward over n tokens after the context (n > 1: a verify step, all logits, absorbed), rolled
  // back; `hidden` receives its rows after the final norm (what the MTP layer reads).
  Tensor hidden;
  auto main_forward = [&](int n) {
    SequenceStep st{&kv, tokens.data() + ctx, n, n > 1, false, n > 1};
    StepBatch batch = model.make_batch({st});
    Tensor out = model.forward(batch, [&](int64_t layer, const Tensor& h) {
      if (layer == cfg.num_hidden_layers) hidden = h;
    });
    backend->copy_to_host(out, logits.data());
    kv.truncate(ctx);
  };
  // The MTP layer over the n positions the verify step kept (1 when the draft was rejected, 2 when kept).
  auto mtp_forward = [&](int n) {
    SequenceStep st{&kv, tokens.data() + ctx + 1, n, false, false, true};
    Tensor out = model.mtp_forward({st}, {ctx}, {0}, hidden);
    backend->copy_to_host(out, logits.data());
  };
  for (int i = 0; i < 20; ++i) main_forward(2), mtp_forward(2);  // warm-up: scratch sized, weights paged in
  // Timed as decoding runs them back to back (a speculative step alternates the main model and the MTP
  // layer, whose weights then share the caches): plain steps; verify steps alone; verify steps each followed
  // by the MTP layer over the 1 or 2 tokens a step keeps.
  std::vector<double> plain, verify2, verify3, step1, step2;
  auto time_ms = [&](auto&& f, std::vector<double>& out) {
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) f();
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / reps);
  };
  for (int r = 0; r < rounds; ++r) {  // alternated, so drift hits every figure alike
    time_ms([&] { main_forward(1); }, plain);
    time_ms([&] { main_forward(2); }, verify2);
    time_ms([&] { main_forward(3); }, verify3);
    time_ms([&] { main_forward(2), mtp_forward(1); }, step1);
    time_ms([&] { main_forward(2), mtp_forward(2); }, step2);
  }
  const double p = median(plain), v2 = median(verify2), v3 = median(verify3), s1 = median(step1),
               s2 = median(step2);
  std::printf("model %s, %d threads, context %d, medians of %d rounds of %d forwards\n", dir.c_str(), threads,
              ctx, rounds, reps);
  std::printf("                                        ms    plain steps\n");
  std::printf("plain decode step                   %7.3f  1.00\n", p);
  std::printf("verify forward, 2 tokens            %7.3f  %.2f\n", v2, v2 / p);
  std::printf("verify forward, 3 tokens            %7.3f  %.2f\n", v3, v3 / p);
  std::printf("verify 2 + MTP layer over 1 token   %7.3f  %.2f  (the draft rejected)\n", s1, s1 / p);
  std::printf("verify 2 + MTP layer over 2 tokens  %7.3f  %.2f  (the draft kept)\n", s2, s2 / p);
  std::printf(
      "one draft at acceptance a: (1 + a) tokens per step / step cost = speed-up over plain decode\n");
  for (int pct = 50; pct <= 100; pct += 10) {
    const double a = pct / 100.0;
    const double step = (1 - a) * s1 + a * s2;
    std::printf("  %3d%%: %.2f / %.2f = %.2fx\n", pct, 1 + a, step / p, (1 + a) * p / step);
  }
  return 0;
}
