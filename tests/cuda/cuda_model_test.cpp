// The whole model on the CUDA backend against the CPU backend: a small random FP8 checkpoint (hidden 512,
// 4 heads, 16 experts, 2 layers, vocab 1024), prefill then decode, both activation modes and attention forms.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "backend/cuda/cuda_backend.h"
#include "checkpoint/random_checkpoint.h"
#include "config/model_config.h"
#include "cuda_test_util.h"
#include "ep/expert_parallel.h"
#include "ep/transport_nccl.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "weights/weight_store.h"

namespace moert::testing {
namespace {

class CudaModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (cuda_device_count() == 0) return;
    dir_ =
        (std::filesystem::temp_directory_path() / ("moert-cuda-model-" + std::to_string(getpid()))).string();
    write_random_checkpoint(dir_, small_model_spec(/*mtp=*/0));
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none)";
  }

  // Logits of a prefill of `prompt` (all positions) followed by `decode` single-token steps, on one backend.
  static std::vector<float> run(Backend& b, ModelOptions opts, const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& decode, DType cache_dtype = DType::kF32) {
    auto store = std::make_shared<WeightStore>(dir_);
    const ModelConfig cfg = load_model_config(dir_);
    DeepseekNetwork m(cfg, store, b, opts);
    LatentCache cache(b, m.cache_layers(), cfg.kv_cache_width(), 16, 32 << 20, cache_dtype);
    KvSequence kv(&cache);
    const int64_t V = cfg.vocab_size;
    std::vector<float> out(prompt.size() * V);
    std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), true}};
    m.forward(steps, out.data());
    for (const int32_t& tok : decode) {
      std::vector<float> l(V);
      std::vector<SequenceStep> st{{&kv, &tok, 1, false}};
      m.forward(st, l.data());
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  }

  static void compare(ActMode mode, AttentionForm form, double bound);
  static std::string dir_;
};
std::string CudaModel::dir_;

void CudaModel::compare(ActMode mode, AttentionForm form, double bound) {
  const uint32_t seed = std::random_device{}();
  std::printf("[ seed     ] %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, 1023);
  std::vector<int32_t> prompt(21), decode(4);
  for (auto& t : prompt) t = tok(rng);
  for (auto& t : decode) t = tok(rng);
  ModelOptions o;
  o.act_mode = mode;
  o.attention = form;
  o.load_mtp = false;
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  const std::vector<float> ref = run(*cpu, o, prompt, decode);
  const std::vector<float> got = run(*gpu, o, prompt, decode);
  const int64_t V = 1024, P = static_cast<int64_t>(prompt.size());
  const std::vector<float> ref_p(ref.begin(), ref.begin() + P * V), got_p(got.begin(), got.begin() + P * V);
  const std::vector<float> ref_d(ref.begin() + P * V, ref.end()), got_d(got.begin() + P * V, got.end());
  const double ep = rel_err(got_p, ref_p), ed = rel_err(got_d, ref_d);
  const CudaGemmStats st = cuda_gemm_stats(*gpu);
  std::printf(
      "model %s/%s: prefill rel err %.3g, decode rel err %.3g (gemm: lt %lld, small-M %lld, tiled %lld)\n",
      mode == ActMode::kFp8 ? "fp8" : "f32",
      form == AttentionForm::kAuto       ? "auto"
      : form == AttentionForm::kAbsorbed ? "absorbed"
                                         : "expanded",
      ep, ed, st.lt_fp8, st.small_m, st.tiled);
  EXPECT_LT(ep, bound);
  EXPECT_LT(ed, bound);
}

// fp32 activations: the same function up to summation order (the random router may still flip a near tie).
TEST_F(CudaModel, F32Auto) {
  compare(ActMode::kF32, AttentionForm::kAuto, 1e-3);
}
TEST_F(CudaModel, F32Absorbed) {
  compare(ActMode::kF32, AttentionForm::kAbsorbed, 1e-3);
}
TEST_F(CudaModel, F32Expanded) {
  compare(ActMode::kF32, AttentionForm::kExpanded, 1e-3);
}
// FP8 activations: bit-identical quantisation, FP8 tensor-core accumulation for more than 16 rows.
TEST_F(CudaModel, Fp8Auto) {
  compare(ActMode::kFp8, AttentionForm::kAuto, 3e-2);
}

// The bf16 latent cache (the CUDA default): prefill + decode within 2e-2 of the CPU's fp32 cache.
TEST_F(CudaModel, Bf16CacheStaysCloseToTheCpu) {
  std::vector<int32_t> prompt(23), decode(4);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 389 + 11) % 1024);
  for (size_t i = 0; i < decode.size(); ++i) decode[i] = static_cast<int32_t>((i * 97 + 5) % 1024);
  ModelOptions o;
  o.load_mtp = false;
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  const std::vector<float> ref = run(*cpu, o, prompt, decode);
  const std::vector<float> got = run(*gpu, o, prompt, decode, DType::kBF16);
  const double e = rel_err(got, ref);
  std::printf("bf16 cache: rel err vs CPU fp32 %.3g\n", e);
  EXPECT_LT(e, 2e-2);
}

// A step that mixes decodes of sequences of different lengths with a prompt chunk: one batch on the GPU
// against the same batch on the CPU; then a decode step of four sequences makes one upload (the step batch)
// and one download (the sampled ids' logits rows) and no other host synchronisation.
TEST_F(CudaModel, MixedStepIsOneBatchWithOneUploadAndOneDownload) {
  const uint32_t seed = std::random_device{}();
  std::printf("[ seed     ] %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, 1023);
  const ModelConfig cfg = load_model_config(dir_);
  const int64_t V = cfg.vocab_size;
  ModelOptions o;
  o.load_mtp = false;
  std::vector<std::vector<int32_t>> prompts{std::vector<int32_t>(13), std::vector<int32_t>(40),
                                            std::vector<int32_t>(3), std::vector<int32_t>(27)};
  for (auto& p : prompts)
    for (auto& t : p) t = tok(rng);
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  std::vector<float> logits[2];
  Backend* backends[2] = {cpu.get(), gpu.get()};
  for (int k = 0; k < 2; ++k) {
    Backend& b = *backends[k];
    auto store = std::make_shared<WeightStore>(dir_);
    DeepseekNetwork m(cfg, store, b, o);
    LatentCache cache(b, m.cache_layers(), cfg.kv_cache_width(), 16, 32 << 20);
    std::vector<KvSequence> kv;
    for (size_t i = 0; i < prompts.size(); ++i) kv.emplace_back(&cache);
    // prefill the first three, then one step: three decodes and the fourth's whole prompt
    std::vector<SequenceStep> pre;
    for (int i = 0; i < 3; ++i)
      pre.push_back({&kv[i], prompts[i].data(), static_cast<int64_t>(prompts[i].size())});
    m.forward(pre, nullptr);
    const int32_t next[3] = {tok(rng), tok(rng), tok(rng)};
    std::vector<SequenceStep> mixed;
    for (int i = 0; i < 3; ++i) mixed.push_back({&kv[i], &next[i], 1});
    mixed.push_back({&kv[3], prompts[3].data(), static_cast<int64_t>(prompts[3].size())});
    logits[k].resize(4 * V);
    m.forward(mixed, logits[k].data());
    if (k == 1) {
      // Warm decode step (fills the allocator's cache), then the measured one.
      std::vector<SamplingRng> rngs(4);
      std::vector<SampleRow> rows(4);
      for (int i = 0; i < 4; ++i) rows[i].rng = &rngs[i];
      std::vector<int32_t> ids(4, 5);
      for (int rep = 0; rep < 2; ++rep) {
        std::vector<SequenceStep> dec;
        for (int i = 0; i < 4; ++i) dec.push_back({&kv[i], &ids[i], 1});
        b.reset_counters();
        StepBatch batch = m.make_batch(dec, &rows);
        const Tensor lg = m.forward(batch);
        std::vector<int32_t> out(4);
        b.sample(lg, rows, batch.sample_table(), out.data());
        const Backend::Counters c = b.counters();
        std::printf("decode step of 4: %lld uploads, %lld downloads, %lld syncs\n", (long long)c.uploads,
                    (long long)c.downloads, (long long)c.syncs);
        if (rep == 1) {
          EXPECT_EQ(c.uploads, 1);
          EXPECT_EQ(c.downloads, 1);
          EXPECT_EQ(c.syncs, 1);
        }
        for (int i = 0; i < 4; ++i) EXPECT_GE(out[i], 0);
        ids = out;
      }
    }
  }
  const double e = rel_err(logits[1], logits[0]);
  std::printf("mixed step: rel err vs CPU %.3g\n", e);
  EXPECT_LT(e, 1e-3);
}

// Decode steps as CUDA graphs: per bucket, the first step runs eagerly, the second is captured and replayed,
// later ones replay with the step's tables updated in place. Four (bucket 4) then three sequences (bucket
// 4 again, one padding row) decoding for several steps give the same bits as without graphs.
TEST_F(CudaModel, GraphReplaysEqualUncapturedSteps) {
  const ModelConfig cfg = load_model_config(dir_);
  const int64_t V = cfg.vocab_size;
  auto decode_run = [&](bool graphs) {
    auto gpu = make_cuda_backend(0);
    ModelOptions o;
    o.load_mtp = false;
    o.graphs = graphs;
    DeepseekNetwork m(cfg, std::make_shared<WeightStore>(dir_), *gpu, o);
    LatentCache cache(*gpu, m.cache_layers(), cfg.kv_cache_width(), 16, 32 << 20);
    std::vector<KvSequence> kv;
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 4; ++i) {
      kv.emplace_back(&cache);
      prompts.push_back(std::vector<int32_t>(5 + 7 * i));
      for (size_t j = 0; j < prompts[i].size(); ++j)
        prompts[i][j] = static_cast<int32_t>((i * 131 + j * 17) % V);
    }
    std::vector<SequenceStep> pre;
    for (int i = 0; i < 4; ++i)
      pre.push_back({&kv[i], prompts[i].data(), static_cast<int64_t>(prompts[i].size())});
    m.forward(pre, nullptr);
    std::vector<float> all;
    std::vector<int32_t> next{1, 2, 3, 4};
    for (int step = 0; step < 7; ++step) {
      const int n = step < 4 ? 4 : 3;
      std::vector<SequenceStep> dec;
      for (int i = 0; i < n; ++i) dec.push_back({&kv[i], &next[i], 1});
      std::vector<float> l(n * V);
      m.forward(dec, l.data());
      for (int i = 0; i < n; ++i)
        next[i] = static_cast<int32_t>(std::max_element(l.begin() + i * V, l.begin() + (i + 1) * V) -
                                       (l.begin() + i * V));
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  };
  const std::vector<float> eager = decode_run(false), graphed = decode_run(true);
  ASSERT_EQ(graphed.size(), eager.size());
  EXPECT_EQ(graphed, eager);
}

// Expert parallelism on a GPU: the routed experts through ExpertParallel over a one-rank NCCL group (rows
// exchanged device to device by all_to_all_rows; only the routing comes to the host), with and without the
// two-microbatch overlap, against the CUDA backend without EP: the same function.
TEST_F(CudaModel, ExpertParallelOverOneRankNccl) {
  if (!ep::nccl_built()) GTEST_SKIP() << "this build has no NCCL";
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> tok(0, 1023);
  std::vector<int32_t> prompt(19), decode(3);
  for (auto& t : prompt) t = tok(rng);
  for (auto& t : decode) t = tok(rng);
  ModelOptions o;
  o.load_mtp = false;
  auto plain_backend = make_cuda_backend(0);
  plain_backend->reset_counters();
  const std::vector<float> want = run(*plain_backend, o, prompt, decode);
  const int64_t plain_down = plain_backend->counters().download_bytes;
  const ModelConfig cfg = load_model_config(dir_);
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) moe_layers += cfg.is_moe_layer(l);
  // What EP may add: per MoE layer and token its routing (top-k ids and weights), never the hidden rows.
  const int64_t tokens = static_cast<int64_t>(prompt.size() + decode.size());
  const int64_t routing_bytes = moe_layers * tokens * cfg.num_experts_per_tok * 8;
  for (bool overlap : {false, true}) {
    auto nccl = ep::make_nccl_transport({});
    auto gpu = make_cuda_backend(nccl->device());
    ep::EpOptions eo;
    eo.overlap = overlap;
    auto hook = std::make_shared<ep::ExpertParallel>(
        nccl, *gpu, ep::contiguous_placement(cfg.num_hidden_layers, cfg.n_routed_experts, 1), eo);
    ModelOptions oe = o;
    oe.moe_hook = hook;
    oe.bind_expert = hook->bind_filter();
    gpu->reset_counters();
    const std::vector<float> got = run(*gpu, oe, prompt, decode);
    const int64_t extra_down = gpu->counters().download_bytes - plain_down;
    const double e = rel_err(got, want);
    std::printf(
        "EP over one-rank NCCL, overlap %s: rel err vs no EP %.3g, %lld bytes more downloaded "
        "(routing: %lld)\n",
        overlap ? "on" : "off", e, static_cast<long long>(extra_down), static_cast<long long>(routing_bytes));
    EXPECT_LT(e, 1e-4);
    EXPECT_LE(extra_down, routing_bytes) << "the exchange staged rows through the host";
  }
}

}  // namespace
}  // namespace moert::testing
