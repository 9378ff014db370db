// End-to-end CPU benchmark: prefill and decode tokens/s of a checkpoint (default: the shipped
// moert-tiny-coder), plus, for that model, a check that greedy decoding reproduces transformers' reference
// continuations exactly (a speed figure only counts when the numbers are right).
//
// usage: moert_model_bench [--model DIR | --generate-wide DIR] [--threads N] [--prefill 512] [--decode 128]
//                          [--activations fp32|fp8] [--repeat 3] [--streams N --stream-context 256]
// --streams N: also N sequences of --stream-context tokens decoding together, one forward per step (the
// batched attention and MoE over every sequence), aggregate tokens/s. The bench uses only
// DeepseekModel::forward(steps, logits), so the same source builds against older trees for A/B runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "kv/latent_cache.h"
#include "model/deepseek_model.h"
#include "model/random_checkpoint.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

using namespace moert;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string arg(int argc, char** argv, const char* key, const std::string& dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], key)) return argv[i + 1];
  return dflt;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Greedy continuation of each reference prompt through prefill + decode; returns matches / total.
std::pair<int, int> check_reference(DeepseekModel& m, Backend& b, const std::string& dir) {
  const std::string path = dir + "/reference.safetensors";
  if (!std::filesystem::exists(path)) return {0, 0};
  SafetensorsFile ref(path);
  int ok = 0, total = 0;
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
    bool same = true;
    for (int64_t i = 0; i < tg.numel(); ++i) {
      int32_t t = argmax(logits);
      same &= t == want[i];
      std::vector<SequenceStep> one{{&kv, &t, 1, false}};
      m.forward(one, logits.data());
    }
    ok += same;
    ++total;
  }
  return {ok, total};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = arg(argc, argv, "--model", MOERT_DEFAULT_MODEL_DIR);
  const std::string wide = arg(argc, argv, "--generate-wide", "");
  const int threads = std::atoi(arg(argc, argv, "--threads", "2").c_str());
  const int prefill = std::atoi(arg(argc, argv, "--prefill", "512").c_str());
  const int decode = std::atoi(arg(argc, argv, "--decode", "128").c_str());
  const int repeat = std::atoi(arg(argc, argv, "--repeat", "3").c_str());
  const bool fp8 = arg(argc, argv, "--activations", "fp32") == "fp8";
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
  auto backend = make_cpu_backend(threads);
  ModelOptions opts;
  opts.act_mode = fp8 ? ActMode::kFp8 : ActMode::kF32;
  DeepseekModel model(cfg, std::make_shared<WeightStore>(dir), *backend, opts);
  std::printf(
      "model %s: hidden %lld, %lld layers, %lld experts (top-%lld), %.1f M parameters; %d threads, %s "
      "activations\n",
      dir.c_str(), (long long)cfg.hidden_size, (long long)cfg.num_hidden_layers,
      (long long)cfg.n_routed_experts, (long long)cfg.num_experts_per_tok,
      model.weights().parameter_count / 1e6, threads, fp8 ? "fp8" : "fp32");

  std::vector<int32_t> tokens(prefill);
  uint32_t x = 12345;
  for (int32_t& t : tokens) t = static_cast<int32_t>((x = x * 1664525u + 1013904223u) >> 8) % cfg.vocab_size;
  LatentCache cache(
      *backend, model.cache_layers(), cfg.kv_cache_width(), 64,
      static_cast<int64_t>(prefill + decode + 64) * cfg.kv_cache_width() * 4 * model.cache_layers() +
          (1 << 20));
  std::vector<float> logits(cfg.vocab_size);

  double best_prefill = 1e30, best_decode = 1e30;
  for (int r = 0; r < repeat; ++r) {
    KvSequence kv(&cache);
    std::vector<SequenceStep> s{{&kv, tokens.data(), prefill, false}};
    auto t0 = Clock::now();
    model.forward(s, logits.data());
    best_prefill = std::min(best_prefill, seconds_since(t0));
    t0 = Clock::now();
    for (int i = 0; i < decode; ++i) {
      int32_t t = argmax(logits);
      std::vector<SequenceStep> one{{&kv, &t, 1, false}};
      model.forward(one, logits.data());
    }
    best_decode = std::min(best_decode, seconds_since(t0));
  }
  std::printf("prefill %d tokens: %.0f tokens/s\n", prefill, prefill / best_prefill);
  std::printf("decode %d tokens after a %d-token prompt: %.0f tokens/s (%.3f ms/token)\n", decode, prefill,
              decode / best_decode, 1e3 * best_decode / decode);
  const int streams = std::atoi(arg(argc, argv, "--streams", "0").c_str());
  if (streams > 0) {
    const int ctx = std::atoi(arg(argc, argv, "--stream-context", "256").c_str());
    const int steps = std::max(8, decode / 4);
    LatentCache scache(
        *backend, model.cache_layers(), cfg.kv_cache_width(), 64,
        static_cast<int64_t>(streams) * (ctx + steps + 64) * cfg.kv_cache_width() * 4 * model.cache_layers() +
            (1 << 20));
    double best = 1e30;
    for (int r = 0; r < repeat; ++r) {
      std::vector<KvSequence> kv;
      for (int i = 0; i < streams; ++i) kv.emplace_back(&scache);
      std::vector<SequenceStep> pre;
      std::vector<std::vector<int32_t>> prompts(streams);
      for (int i = 0; i < streams; ++i) {
        prompts[i].assign(tokens.begin(), tokens.begin() + std::min<int>(ctx, prefill));
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
      best = std::min(best, seconds_since(t0));
    }
    std::printf("decode with %d streams at context %d: %.0f tokens/s (%.3f ms/step)\n", streams,
                std::min<int>(ctx, prefill), streams * steps / best, 1e3 * best / steps);
  }
  auto [ok, total] = check_reference(model, *backend, dir);
  if (total)
    std::printf("reference greedy continuations reproduced: %d/%d%s\n", ok, total,
                fp8 ? " (the reference is fp32; fp8 activations are expected to drift)" : "");
  return !fp8 && total && ok != total ? 1 : 0;
}
