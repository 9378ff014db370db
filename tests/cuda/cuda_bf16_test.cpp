// BF16 activations on the CUDA backend (Backend::act_dtype, docs/DESIGN.md "Numerics"): every templated
// kernel with bf16 operands against the CPU's fp32 op, and the whole random model with bf16 activations
// against fp32 activations and the CPU. They skip without a device, as the other CUDA tests.
//
// Tolerances, from bf16's 8-bit significand (unit roundoff u = 2^-8 = 3.9e-3: a stored value is within
// u * |x| of the fp32 one):
// - one op on bf16-exact inputs (the CPU gets the same values, rounded on the host) whose output is bf16:
//   ||out - ref|| <= u ||ref|| plus fp32's summation-order error, so kOneRounding = 4e-3;
// - the same with an fp32 output: only the summation order differs, kF32 = 2e-5 (as cuda_ops_test);
// - copies, gathers and cache round trips of bf16-exact values: exact (EXPECT_EQ);
// - the expert FFN (gate, up, silu_mul, the grouped rows: four roundings in sequence, each <= u):
//   kExpertFfn = 4u = 1.6e-2; with FP8 activations a rounding that moves a value across an e4m3 rounding
//   boundary changes its code by one e4m3 step (2^-3 relative): about u / 2^-3 = 1/32 of the values, which
//   is sqrt(1/32) * 2^-3 = 2.2e-2 of the norm, so kExpertFfnFp8 = 5e-2;
// - the whole model, per logits row: about a dozen stored activations on a token's path, each rounding
//   incoherent (RMS about u / sqrt(3) / 1.2 = 1.6e-3), give a few 1e-3; kModelRow = 2e-2 for every row
//   before the first token whose routing differs between the two runs (RoutingRecorder: a random router's
//   near-tie that a perturbation of u flips swaps one expert of four, O(10%) of that row, and later rows
//   attend to it), and the whole comparison bounds those, kModel = 2e-1. Where the routing is not recorded
//   (the MTP test), at least 3/4 of the rows within kModelRow. With FP8 activations a bf16 rounding moves a
//   GEMM input across an e4m3 rounding boundary for about 2^-8 / 2^-3.5 = 4% of the values, each by one e4m3
//   step (about 2^-3.5 = 9% of it): 2e-2 per quantised GEMM input, so kModelRowFp8 = 1e-1. The fp32 path
//   keeps cuda_model_test's 1e-3. Expert parallelism changes no rounding (the exchange carries bf16 values
//   widened exactly, fp32 partial sums): kEp = 1e-4, as the fp32 EP test. Graph replays stay bit-equal to
//   eager steps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "checkpoint/random_checkpoint.h"
#include "config/model_config.h"
#include "cpu/numeric_types.h"
#include "cuda_test_util.h"
#include "ep/expert_parallel.h"
#include "ep/transport_nccl.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "model/moe_ffn.h"
#include "util/error.h"
#include "weights/weight_store.h"

namespace moert::testing {
namespace {

constexpr double kOneRounding = 4e-3;
constexpr double kF32 = 2e-5;
constexpr double kFp8Lt = 1e-2;   // cuBLASLt's FP8 tensor cores on the same quantised activations
constexpr double kLtBf16 = 1e-4;  // cuBLASLt's BF16 tensor cores: exact products, fp32 sums in their order
constexpr double kExpertFfn = 1.6e-2, kExpertFfnFp8 = 5e-2;
constexpr double kModel = 2e-1, kModelRow = 2e-2, kModelRowFp8 = 1e-1, kEp = 1e-4;

#define EXPECT_REL(got, ref, bound) EXPECT_LT(rel_err(got, ref), bound)

float round_bf16(float f) {
  return kernels::bf16_to_float(kernels::float_to_bf16(f));
}
std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}

class CudaBf16Ops : public CudaOps {
 protected:
  // bf16-exact data: the CPU's F32 tensor and the GPU's BF16 tensor hold the same values.
  std::pair<Tensor, Tensor> bpair(const std::vector<float>& h, int64_t rows, int64_t cols) {
    const std::vector<float> r = rounded(h);
    Tensor a = cpu->empty(DType::kF32, rows, cols), b = gpu->empty(DType::kBF16, rows, cols);
    cpu->copy_from_host(r.data(), a);
    gpu->copy_from_host(r.data(), b);
    return {a, b};
  }
  // A CPU F32 output and a NaN-poisoned GPU BF16 output.
  std::pair<Tensor, Tensor> boutputs(int64_t rows, int64_t cols) {
    Tensor a = cpu->empty(DType::kF32, rows, cols), b = gpu->empty(DType::kBF16, rows, cols);
    std::vector<float> nan(static_cast<size_t>(rows * cols), std::numeric_limits<float>::quiet_NaN());
    gpu->copy_from_host(nan.data(), b);
    return {a, b};
  }
};

TEST_F(CudaBf16Ops, CopiesRoundToNearestEvenAndWidenExactly) {
  std::vector<float> h = randn(37 * 41, 10.0f);
  h[3] = 1.0f + 1.0f / 256;  // a tie: rounds to even (1.0)
  h[4] = 1.0f + 3.0f / 256;  // a tie: rounds to even (1 + 4/256)
  Tensor t = gpu->empty(DType::kBF16, 37, 41);
  gpu->copy_from_host(h.data(), t);
  const std::vector<float> back = host(*gpu, t);
  EXPECT_EQ(back, rounded(h));
  EXPECT_EQ(back[3], 1.0f);
  EXPECT_EQ(back[4], 1.0f + 4.0f / 256);
  // A column slice (row stride != cols) both ways.
  Tensor s = gpu->empty(DType::kBF16, 37, 50).slice_cols(5, 41);
  gpu->copy_from_host(h.data(), s);
  EXPECT_EQ(host(*gpu, s), rounded(h));
}

TEST_F(CudaBf16Ops, EmbeddingAndGatherRows) {
  auto table = weight(DType::kBF16, 97, 300, 1.0f);
  std::vector<int32_t> ids = {3, 96, 0, 50, 50, 7};
  auto [ic, ig] = pair_i32(ids, 6, 1);
  auto [oc, og] = boutputs(6, 300);
  cpu->embedding(table->cpu.w, ic, oc);
  gpu->embedding(table->gpu.w, ig, og);
  EXPECT_EQ(host(*gpu, og), host(*cpu, oc));  // a bf16 table is bf16-exact
  // gather_rows: F32 -> BF16 (rounded once), BF16 -> BF16 and BF16 -> F32 (exact).
  const std::vector<float> xh = randn(9 * 130);
  auto [xc, xg] = pair(xh, 9, 130);
  std::vector<int32_t> rows = {8, 0, 3, 3};
  auto [rc, rg] = pair_i32(rows, 4, 1);
  auto [gc, gg] = boutputs(4, 130);
  cpu->gather_rows(xc, rc, gc);
  gpu->gather_rows(xg, rg, gg);
  EXPECT_EQ(host(*gpu, gg), rounded(host(*cpu, gc)));
  auto [bc, bg] = bpair(xh, 9, 130);
  auto [g2c, g2g] = boutputs(4, 130);
  cpu->gather_rows(bc, rc, g2c);
  gpu->gather_rows(bg, rg, g2g);
  EXPECT_EQ(host(*gpu, g2g), host(*cpu, g2c));
  auto [g3c, g3g] = outputs(4, 130);
  cpu->gather_rows(bc, rc, g3c);
  gpu->gather_rows(bg, rg, g3g);
  EXPECT_EQ(host(*gpu, g3g), host(*cpu, g3c));
}

TEST_F(CudaBf16Ops, RmsNormEveryTypePair) {
  auto w = weight(DType::kBF16, 1, 520, 1.0f);
  const std::vector<float> xh = randn(7 * 520, 3.0f);
  {  // F32 residual -> BF16 (the layers' input norms)
    auto [xc, xg] = pair(xh, 7, 520);
    auto [oc, og] = boutputs(7, 520);
    cpu->rmsnorm(xc, w->cpu.w, 1e-6f, oc);
    gpu->rmsnorm(xg, w->gpu.w, 1e-6f, og);
    EXPECT_REL(host(*gpu, og), host(*cpu, oc), kOneRounding);
  }
  {  // BF16 in place (q_a, kv_a, MTP's norms)
    auto [xc, xg] = bpair(xh, 7, 520);
    cpu->rmsnorm(xc, w->cpu.w, 1e-6f, xc);
    gpu->rmsnorm(xg, w->gpu.w, 1e-6f, xg);
    EXPECT_REL(host(*gpu, xg), host(*cpu, xc), kOneRounding);
  }
  {  // BF16 -> F32
    auto [xc, xg] = bpair(xh, 7, 520);
    auto [oc, og] = outputs(7, 520);
    cpu->rmsnorm(xc, w->cpu.w, 1e-6f, oc);
    gpu->rmsnorm(xg, w->gpu.w, 1e-6f, og);
    EXPECT_REL(host(*gpu, og), host(*cpu, oc), 1e-6);
  }
}

// Every GEMM path (small-M, tiled, cuBLASLt FP8, the own FP8 path) with bf16 inputs and bf16 or fp32 outputs,
// and fp32 inputs with a bf16 output.
TEST_F(CudaBf16Ops, LinearBf16InputsAndOutputs) {
  struct Case {
    DType dt;
    int64_t m, n, k;
  };
  const Case cases[] = {
      {DType::kF8E4M3, 1, 256, 512},  {DType::kF8E4M3, 5, 576, 384}, {DType::kF8E4M3, 40, 576, 384},
      {DType::kF8E4M3, 33, 300, 200}, {DType::kBF16, 1, 1000, 512},  {DType::kBF16, 40, 130, 72},
      {DType::kBF16, 64, 256, 512},   {DType::kF32, 3, 64, 96},      {DType::kF32, 70, 64, 96}};
  for (const Case& c : cases)
    for (ActMode mode : {ActMode::kF32, ActMode::kFp8})
      for (int variant = 0; variant < 3; ++variant) {  // bf16 -> bf16, bf16 -> f32, f32 -> bf16
        SCOPED_TRACE(::testing::Message()
                     << dtype_name(c.dt) << " m=" << c.m << " n=" << c.n << " k=" << c.k
                     << " mode=" << (mode == ActMode::kFp8 ? "fp8" : "f32") << " variant=" << variant);
        auto w = weight(c.dt, c.n, c.k);
        // x a column slice of a wider matrix: 8 columns in (16 bytes of bf16: the small-M kernel's vectors)
        const std::vector<float> xh = randn(c.m * (c.k + 16));
        auto [xc_full, xg_full] = variant == 2 ? pair(xh, c.m, c.k + 16) : bpair(xh, c.m, c.k + 16);
        Tensor xc = xc_full.slice_cols(8, c.k), xg = xg_full.slice_cols(8, c.k);
        auto [oc, og] = variant == 1 ? outputs(c.m, c.n) : boutputs(c.m, c.n);
        cpu->linear(xc, w->cpu, oc, mode);
        gpu->linear(xg, w->gpu, og, mode);
        const bool lt_possible = mode == ActMode::kFp8 && c.dt == DType::kF8E4M3 && c.m > 16;
        // bf16 x bf16 through cuBLASLt: the same exact products, summed in another order on tensor cores.
        const bool lt_bf16 = c.dt == DType::kBF16 && c.m > 16 && variant != 2;
        const double bound = (lt_possible ? kFp8Lt
                              : lt_bf16   ? kLtBf16
                                          : kF32) +
                             (variant == 1 ? 0.0 : kOneRounding);
        EXPECT_REL(host(*gpu, og), host(*cpu, oc), bound);
      }
  const CudaGemmStats st = cuda_gemm_stats(*gpu);
  std::printf(
      "bf16 gemm paths: cuBLASLt fp8 %lld, cuBLASLt bf16 %lld, small-M %lld, tiled %lld, cuBLASLt fallbacks "
      "%lld\n",
      st.lt_fp8, st.lt_bf16, st.small_m, st.tiled, st.lt_fallbacks);
  EXPECT_GT(st.lt_bf16, 0);  // the BF16 cases of 40 and 64 rows with bf16 x
}

TEST_F(CudaBf16Ops, RopeSiluMulAdd) {
  const int64_t T = 6, heads = 3, stride = 192, dim = 64;
  std::vector<float> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / dim) * (0.5f + 0.01f * i);
  std::vector<int32_t> pos = {0, 1, 17, 300, 4095, 12345};
  auto [pc, pg] = pair_i32(pos, T, 1);
  auto [fc, fg] = pair(inv, 1, dim / 2);
  auto [xc, xg] = bpair(randn(T * heads * stride), T, heads * stride);
  Tensor sc = xc.slice_cols(128, heads * stride - 128), sg = xg.slice_cols(128, heads * stride - 128);
  cpu->rope(sc, heads, stride, dim, pc, fc, 1.2f);
  gpu->rope(sg, heads, stride, dim, pg, fg, 1.2f);
  EXPECT_REL(host(*gpu, xg), host(*cpu, xc), kOneRounding);

  auto [gc, gg] = bpair(randn(T * 300, 3.0f), T, 300);
  auto [uc, ug] = bpair(randn(T * 300), T, 300);
  auto [oc, og] = boutputs(T, 300);
  cpu->silu_mul(gc, uc, oc);
  gpu->silu_mul(gg, ug, og);
  EXPECT_REL(host(*gpu, og), host(*cpu, oc), kOneRounding);
  // add: a BF16 x into the F32 residual (exact inputs, one fp32 add), and BF16 into BF16.
  auto [yc, yg] = pair(randn(T * 300), T, 300);
  cpu->add(gc, yc);
  gpu->add(gg, yg);
  EXPECT_REL(host(*gpu, yg), host(*cpu, yc), 1e-7);
  cpu->add(gc, uc);
  gpu->add(gg, ug);
  EXPECT_REL(host(*gpu, ug), host(*cpu, uc), kOneRounding);
}

TEST_F(CudaBf16Ops, AttentionExpandedAndMlaOps) {
  const int64_t heads = 4, nope = 128, rope = 64, vdim = 128, lat = 512, qk = nope + rope;
  {  // varlen expanded attention: 9 queries after 37 cached tokens, and a 5-token prompt
    const int64_t past[2] = {37, 0}, n[2] = {9, 5};
    std::vector<int32_t> pos, kst;
    int64_t keys = 0;
    for (int s = 0; s < 2; ++s) {
      for (int64_t i = 0; i < n[s]; ++i) {
        pos.push_back(static_cast<int32_t>(past[s] + i));
        kst.push_back(static_cast<int32_t>(keys));
      }
      keys += past[s] + n[s];
    }
    const int64_t t = static_cast<int64_t>(pos.size());
    auto [pc, pg] = pair_i32(pos, t, 1);
    auto [kc0, kg0] = pair_i32(kst, t, 1);
    auto [qc, qg] = bpair(randn(t * heads * qk), t, heads * qk);
    auto [kc, kg] = bpair(randn(keys * heads * qk), keys, heads * qk);
    auto [vc, vg] = bpair(randn(keys * heads * vdim), keys, heads * vdim);
    auto [oc, og] = boutputs(t, heads * vdim);
    cpu->attention_expanded(qc, kc, vc, heads, pc, kc0, 0.07f, oc);
    gpu->attention_expanded(qg, kg, vg, heads, pg, kg0, 0.07f, og);
    EXPECT_REL(host(*gpu, og), host(*cpu, oc), kOneRounding);
  }
  {  // k/v expansion: a plain copy of bf16 values
    const int64_t s = 11, hv = 96;
    auto [kvc, kvg] = bpair(randn(s * heads * (nope + hv)), s, heads * (nope + hv));
    auto [rc, rg] = bpair(randn(s * (lat + rope)), s, lat + rope);
    Tensor krc = rc.slice_cols(lat, rope), krg = rg.slice_cols(lat, rope);
    auto [kc, kg] = boutputs(s, heads * (nope + rope));
    auto [vc, vg] = boutputs(s, heads * hv);
    cpu->mla_expand_kv(kvc, krc, heads, nope, hv, kc, vc);
    gpu->mla_expand_kv(kvg, krg, heads, nope, hv, kg, vg);
    EXPECT_EQ(host(*gpu, kg), host(*cpu, kc));
    EXPECT_EQ(host(*gpu, vg), host(*cpu, vc));
  }
  const int64_t t = 3;
  for (DType dt : {DType::kF8E4M3, DType::kBF16}) {
    auto kvb = weight(dt, heads * (nope + vdim), lat);
    for (ActMode mode : {ActMode::kF32, ActMode::kFp8}) {
      auto [qc, qg] = bpair(randn(t * heads * qk), t, heads * qk);
      auto [lc, lg] = boutputs(t, heads * lat);
      cpu->mla_absorb_q(qc, qk, kvb->cpu, heads, nope, vdim, lc, mode);
      gpu->mla_absorb_q(qg, qk, kvb->gpu, heads, nope, vdim, lg, mode);
      EXPECT_REL(host(*gpu, lg), host(*cpu, lc), kOneRounding) << "absorb_q " << dtype_name(dt);
      auto [ic, ig] = bpair(randn(t * heads * lat), t, heads * lat);
      auto [oc, og] = boutputs(t, heads * vdim);
      cpu->mla_absorb_out(ic, kvb->cpu, heads, nope, vdim, oc, mode);
      gpu->mla_absorb_out(ig, kvb->gpu, heads, nope, vdim, og, mode);
      EXPECT_REL(host(*gpu, og), host(*cpu, oc), kOneRounding) << "absorb_out " << dtype_name(dt);
    }
  }
}

// bf16 rows into an fp32 and a bf16 pool, gathered back as bf16 (exact), then the latent attention with bf16
// queries and output over the pool.
TEST_F(CudaBf16Ops, CacheWriteGatherAndLatentAttention) {
  const int64_t heads = 4, lat = 512, rope = 64, width = lat + rope, npages = 6, page_rows = 16;
  for (bool bf16_pool : {false, true}) {
    SCOPED_TRACE(bf16_pool ? "bf16 pool" : "fp32 pool");
    const std::vector<float> content = rounded(randn(npages * page_rows * width));
    Tensor poolc = cpu->empty(DType::kF32, npages, page_rows * width);
    Tensor poolg = gpu->empty(bf16_pool ? DType::kBF16 : DType::kF32, npages, page_rows * width);
    const LatentPool pc{poolc, page_rows, page_rows * width, width},
        pg{poolg, page_rows, page_rows * width, width};
    // Every slot written from bf16 rows on both sides.
    std::vector<int32_t> every(npages * page_rows);
    std::iota(every.begin(), every.end(), 0);
    auto [ec, eg] = pair_i32(every, npages * page_rows, 1);
    auto [rc, rg] = bpair(content, npages * page_rows, width);
    cpu->cache_write(rc, pc, ec);
    gpu->cache_write(rg, pg, eg);
    // One sequence of 70 tokens on pages 3, 0, 5, 1, 4; the last 2 tokens are this step's queries.
    std::vector<int32_t> pages = {3, 0, 5, 1, 4}, indptr = {0, 5}, kv_len = {70};
    std::vector<int32_t> slots, pos, row_seq;
    for (int64_t p = 68; p < 70; ++p) {
      slots.push_back(pages[p / page_rows] * static_cast<int32_t>(page_rows) +
                      static_cast<int32_t>(p % page_rows));
      pos.push_back(static_cast<int32_t>(p));
      row_seq.push_back(0);
    }
    const int64_t t = 2;
    auto [sc, sg] = pair_i32(slots, t, 1);
    auto [oc, og] = boutputs(t, width);
    cpu->cache_gather(pc, sc, oc);
    gpu->cache_gather(pg, sg, og);
    EXPECT_EQ(host(*gpu, og), host(*cpu, oc));
    PagedKv kc, kg;
    std::tie(kc.indptr, kg.indptr) = pair_i32(indptr, 2, 1);
    std::tie(kc.pages, kg.pages) = pair_i32(pages, 5, 1);
    std::tie(kc.kv_len, kg.kv_len) = pair_i32(kv_len, 1, 1);
    kc.seqs = kg.seqs = 1;
    kc.max_kv_len = kg.max_kv_len = 70;
    auto [ppc, ppg] = pair_i32(pos, t, 1);
    auto [rsc, rsg] = pair_i32(row_seq, t, 1);
    auto [qlc, qlg] = bpair(randn(t * heads * lat, 0.05f), t, heads * lat);
    auto [qc, qg] = bpair(randn(t * heads * 192, 0.05f), t, heads * 192);
    Tensor qrc = qc.slice_cols(128, heads * 192 - 128), qrg = qg.slice_cols(128, heads * 192 - 128);
    auto [ac, ag] = boutputs(t, heads * lat);
    cpu->attention_latent(qlc, qrc, 192, pc, kc, rsc, heads, lat, rope, ppc, 0.1f, ac);
    gpu->attention_latent(qlg, qrg, 192, pg, kg, rsg, heads, lat, rope, ppg, 0.1f, ag);
    EXPECT_REL(host(*gpu, ag), host(*cpu, ac), kOneRounding);
  }
}

// The grouped expert FFN with bf16 activations (the grouped rows, gate, up, down in bf16; the combine into an
// F32 output), and the combine alone from bf16 rows into a bf16 output.
TEST_F(CudaBf16Ops, MoeExpertsAndCombine) {
  const int64_t E = 8, hidden = 256, inter = 128, top_k = 3;
  gpu->set_act_dtype(DType::kBF16);  // routed_experts allocates its grouped rows in the backend's dtype
  std::vector<std::unique_ptr<HostWeight>> hw;
  std::vector<ExpertWeights> ec(E), eg(E);
  for (int64_t e = 0; e < E; ++e)
    for (int part = 0; part < 3; ++part) {
      hw.push_back(part < 2 ? weight(DType::kF8E4M3, inter, hidden) : weight(DType::kF8E4M3, hidden, inter));
      WeightMatrix& mc = part == 0 ? ec[e].gate : part == 1 ? ec[e].up : ec[e].down;
      WeightMatrix& mg = part == 0 ? eg[e].gate : part == 1 ? eg[e].up : eg[e].down;
      mc = hw.back()->cpu;
      mg = hw.back()->gpu;
    }
  ExpertSet pc, pg;
  for (int64_t e = 0; e < E; ++e) pc.experts.push_back(&ec[e]), pg.experts.push_back(&eg[e]);
  pc.experts[5] = pg.experts[5] = nullptr;  // held by another rank
  cpu->prepare_experts(pc);
  gpu->prepare_experts(pg);
  for (int64_t T : {1, 11, 40})
    for (ActMode mode : {ActMode::kF32, ActMode::kFp8}) {
      std::vector<int32_t> ids(T * top_k);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<int32_t> perm(E);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        std::copy(perm.begin(), perm.begin() + top_k, ids.begin() + t * top_k);
      }
      auto [ic, ig] = pair_i32(ids, T, top_k);
      std::vector<float> w = randn(T * top_k);
      for (auto& x : w) x = std::fabs(x);
      auto [wc, wg] = pair(w, T, top_k);
      auto [xc, xg] = bpair(randn(T * hidden), T, hidden);
      auto [oc, og] = outputs(T, hidden);
      routed_experts(*cpu, pc, xc, ic, wc, oc, mode);
      routed_experts(*gpu, pg, xg, ig, wg, og, mode);
      EXPECT_REL(host(*gpu, og), host(*cpu, oc), mode == ActMode::kFp8 ? kExpertFfnFp8 : kExpertFfn)
          << "T=" << T;
      // The combine alone: bf16 rows -> bf16 out, one rounding of an fp32 sum.
      MoeGrouping gc, gg;
      cpu->moe_group(ic, pc, gc);
      gpu->moe_group(ig, pg, gg);
      const int64_t rows_c = gc.rows;
      const std::vector<float> yh = randn(std::max<int64_t>(rows_c, 1) * hidden);
      auto [yc, yg_exact] = bpair(yh, std::max<int64_t>(rows_c, 1), hidden);
      // The GPU's grouped rows are T * top_k (a bound); rows past the CPU's count are never read.
      Tensor yg = gpu->empty(DType::kBF16, gg.rows, hidden);
      gpu->fill_zero(yg);
      std::vector<float> yhost = host(*gpu, yg_exact);
      yhost.resize(static_cast<size_t>(gg.rows * hidden), 0.0f);
      gpu->copy_from_host(yhost.data(), yg);
      auto [cc, cg] = boutputs(T, hidden);
      cpu->moe_combine(yc.slice_rows(0, rows_c), gc.slot_row, wc, ic, cc);
      gpu->moe_combine(yg, gg.slot_row, wg, ig, cg);
      EXPECT_REL(host(*gpu, cg), host(*cpu, cc), kOneRounding) << "combine T=" << T;
    }
}

// What no kernel implements is an error naming the op and the argument, before anything runs.
TEST_F(CudaBf16Ops, MixedTypesNoKernelTakesAreRejectedByName) {
  EXPECT_TRUE(gpu->supports_bf16_activations());
  Tensor gb = gpu->empty(DType::kBF16, 4, 64), uf = gpu->empty(DType::kF32, 4, 64);
  Tensor h16 = gpu->empty(DType::kF16, 4, 64);
  auto expect_error = [](const std::function<void()>& f, const std::string& want) {
    try {
      f();
      ADD_FAILURE() << "no error, expected " << want;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInternal);
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error([&] { gpu->silu_mul(gb, uf, gb); },
               "backend op silu_mul: up is F32 [4, 64], gate BF16 [4, 64]");
  expect_error([&] { gpu->add(h16, uf); }, "backend op add: x is F16 [4, 64], expected F32 or BF16");
  std::vector<int32_t> pos = {0, 1, 2, 3}, kst = {0, 0, 0, 0};
  Tensor p = gpu->empty(DType::kI32, 4, 1), k0 = gpu->empty(DType::kI32, 4, 1);
  gpu->copy_from_host_i32(pos.data(), p);
  gpu->copy_from_host_i32(kst.data(), k0);
  Tensor out = gpu->empty(DType::kBF16, 4, 64);
  expect_error([&] { gpu->attention_expanded(gb, uf, gb, 1, p, k0, 0.1f, out); },
               "backend op attention_expanded: k is F32");
  // In place only in one type: a BF16 output over its F32 input is an overlap.
  Tensor wide = gpu->empty(DType::kF32, 4, 64);
  Tensor alias = wide;
  alias.dtype = DType::kBF16;
  auto w = weight(DType::kBF16, 1, 64, 1.0f);
  expect_error([&] { gpu->rmsnorm(wide, w->gpu.w, 1e-6f, alias); }, "backend op rmsnorm: out overlaps x");
  // The router's logits stay F32.
  RoutingParams rp;
  rp.experts = 64;
  rp.top_k = 2;
  rp.grouped = false;
  Tensor ids = gpu->empty(DType::kI32, 4, 2), wts = gpu->empty(DType::kF32, 4, 2);
  expect_error([&] { gpu->moe_route(gb, Tensor{}, rp, ids, wts); }, "backend op moe_route: logits is BF16");
}

// ---- the whole random model (as cuda_model_test.cpp's checkpoint)

// Runs the routed experts as the model does without a hook, recording each call's chosen experts (every
// token's top-k, sorted), so two runs can tell rounding from a router near-tie that a rounding flipped.
class RoutingRecorder final : public MoeExpertsHook {
 public:
  explicit RoutingRecorder(Backend& b) : b_(b) {}
  struct Call {
    int64_t tokens = 0, k = 0;
    std::vector<int32_t> ids;  // [tokens, k], each token's ids sorted
  };
  std::vector<Call> calls;

  std::unique_ptr<MoeExchange> begin(int64_t, const LayerWeights& L, const Tensor& x, const Tensor& ids,
                                     const Tensor& weights, ActMode mode) override {
    auto ex = std::make_unique<Pending>();
    ex->L = &L;
    ex->x = x;
    ex->ids = ids;
    ex->weights = weights;
    ex->mode = mode;
    Call c{ids.rows, ids.cols, std::vector<int32_t>(static_cast<size_t>(ids.rows * ids.cols))};
    if (!c.ids.empty()) b_.copy_to_host_i32(ids, c.ids.data());
    for (int64_t t = 0; t < c.tokens; ++t) std::sort(c.ids.begin() + t * c.k, c.ids.begin() + (t + 1) * c.k);
    calls.push_back(std::move(c));
    return ex;
  }
  void compute(MoeExchange&) override {}
  void finish(MoeExchange& base, Tensor& out) override {
    Pending& p = static_cast<Pending&>(base);
    if (p.x.rows > 0) moert::routed_experts(b_, p.L->routed, p.x, p.ids, p.weights, out, p.mode);
  }

 private:
  struct Pending final : MoeExchange {
    const LayerWeights* L = nullptr;
    Tensor x, ids, weights;
    ActMode mode = ActMode::kF32;
  };
  Backend& b_;
};

class CudaBf16Model : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (cuda_device_count() == 0) return;
    dir_ =
        (std::filesystem::temp_directory_path() / ("moert-cuda-bf16-" + std::to_string(getpid()))).string();
    write_random_checkpoint(dir_, small_model_spec(/*mtp=*/1));
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none)";
  }

  // Logits of a prefill of `prompt` (all positions) then `decode` single-token steps; with `mtp`, the MTP
  // module's logits over the prompt appended (fed the forward's hidden states).
  static std::vector<float> run(Backend& b, ModelOptions opts, const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& decode, DType cache_dtype, bool mtp = false,
                                std::shared_ptr<RoutingRecorder> routing = nullptr) {
    if (routing) opts.moe_hook = routing;
    auto store = std::make_shared<WeightStore>(dir_);
    const ModelConfig cfg = load_model_config(dir_);
    DeepseekNetwork m(cfg, store, b, opts);
    LatentCache cache(b, m.cache_layers(), cfg.kv_cache_width(), 16, 32 << 20, cache_dtype);
    KvSequence kv(&cache);
    const int64_t V = cfg.vocab_size, P = static_cast<int64_t>(prompt.size());
    std::vector<float> out(P * V), hidden;
    std::vector<SequenceStep> steps{{&kv, prompt.data(), P, true}};
    m.forward(steps, out.data(), nullptr, mtp ? &hidden : nullptr);
    if (mtp) {
      // Positions 0 .. P-2 drafted from the hidden states and the next prompt tokens.
      std::vector<float> l((P - 1) * V);
      m.mtp_draft(kv, 0, hidden.data(), prompt.data() + 1, P - 1, l.data());
      out.insert(out.end(), l.begin(), l.end());
    }
    for (const int32_t& tok : decode) {
      std::vector<float> l(V);
      std::vector<SequenceStep> st{{&kv, &tok, 1, false}};
      m.forward(st, l.data());
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  }
  static int64_t moe_layers() {
    const ModelConfig cfg = load_model_config(dir_);
    int64_t n = 0;
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) n += cfg.is_moe_layer(l);
    return n;
  }
  static std::string dir_;
};
std::string CudaBf16Model::dir_;

// Rows (of V logits) whose relative error is under `bound`.
int rows_within(const std::vector<float>& got, const std::vector<float>& ref, int64_t V, double bound) {
  int n = 0;
  for (size_t r = 0; r + V <= got.size() && r + V <= ref.size(); r += V)
    n += rel_err(std::vector<float>(got.begin() + r, got.begin() + r + V),
                 std::vector<float>(ref.begin() + r, ref.begin() + r + V)) < bound;
  return n;
}
// At least 3/4 of the rows within `row_bound`, and the whole within kModel; prints what it measured.
void expect_close(const char* what, const std::vector<float>& got, const std::vector<float>& ref, int64_t V,
                  double row_bound) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const int rows = static_cast<int>(ref.size() / V), within = rows_within(got, ref, V, row_bound);
  const double e = rel_err(got, ref);
  std::printf("bf16 %s: rel err %.3g, %d/%d rows within %.3g\n", what, e, within, rows, row_bound);
  EXPECT_GE(4 * within, 3 * rows) << what;
  EXPECT_LT(e, kModel) << what;
}

// Rows (of V logits) whose argmax agrees: printed, a measure of what the errors mean for greedy decoding.
int same_argmax(const std::vector<float>& a, const std::vector<float>& b, int64_t V) {
  int same = 0;
  for (size_t r = 0; r + V <= a.size() && r + V <= b.size(); r += V)
    same += std::max_element(a.begin() + r, a.begin() + r + V) - (a.begin() + r) ==
            std::max_element(b.begin() + r, b.begin() + r + V) - (b.begin() + r);
  return same;
}

// The first logits row (run()'s order: the prompt's rows, then one per decode step) whose routing differs
// between two recorded runs of the same steps, or `rows` when none does. Each forward makes one call per
// MoE layer over all its rows.
int64_t first_flip(const RoutingRecorder& a, const RoutingRecorder& b, int64_t moe_layers, int64_t rows) {
  if (a.calls.size() != b.calls.size() || moe_layers <= 0) return 0;
  int64_t row0 = 0, first = rows;
  for (size_t f = 0; f + moe_layers <= a.calls.size(); f += moe_layers) {
    const int64_t T = a.calls[f].tokens;
    for (int64_t l = 0; l < moe_layers; ++l) {
      const RoutingRecorder::Call &x = a.calls[f + l], &y = b.calls[f + l];
      if (x.tokens != T || y.tokens != T || x.k != y.k) return 0;
      for (int64_t t = 0; t < T; ++t)
        if (!std::equal(x.ids.begin() + t * x.k, x.ids.begin() + (t + 1) * x.k, y.ids.begin() + t * y.k))
          first = std::min(first, row0 + t);
    }
    row0 += T;
  }
  return first;
}

// Every row before row `until` within `row_bound`, and the whole within kModel; prints what it measured.
void expect_close_until(const char* what, const std::vector<float>& got, const std::vector<float>& ref,
                        int64_t V, double row_bound, int64_t until) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const int64_t rows = static_cast<int64_t>(ref.size()) / V, checked = std::clamp<int64_t>(until, 0, rows);
  double worst = 0;
  for (int64_t r = 0; r < checked; ++r) {
    const double e = rel_err(std::vector<float>(got.begin() + r * V, got.begin() + (r + 1) * V),
                             std::vector<float>(ref.begin() + r * V, ref.begin() + (r + 1) * V));
    worst = std::max(worst, e);
    EXPECT_LT(e, row_bound) << what << ": row " << r << " (routing identical up to row " << until << ")";
  }
  const double e = rel_err(got, ref);
  std::printf(
      "bf16 %s: rel err %.3g; %lld/%lld rows before the first routing flip, worst %.3g (bound %.3g)\n", what,
      e, static_cast<long long>(checked), static_cast<long long>(rows), worst, row_bound);
  EXPECT_LT(e, kModel) << what;
}

// bf16 activations against fp32 activations (both on the GPU, fp32 cache) and the CPU, prefill and decode,
// both attention forms and both activation modes; then bf16 activations with the bf16 cache (the CUDA
// defaults). The fp32-activation run is the reference numerics and stays within cuda_model_test's 1e-3.
TEST_F(CudaBf16Model, Bf16ActivationsStayCloseToFp32) {
  std::vector<int32_t> prompt(21), decode(4);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 389 + 11) % 1024);
  for (size_t i = 0; i < decode.size(); ++i) decode[i] = static_cast<int32_t>((i * 97 + 5) % 1024);
  const int64_t V = 1024, P = static_cast<int64_t>(prompt.size());
  struct Case {
    ActMode mode;
    AttentionForm form;
  };
  for (const Case c :
       {Case{ActMode::kF32, AttentionForm::kAuto}, Case{ActMode::kF32, AttentionForm::kAbsorbed},
        Case{ActMode::kF32, AttentionForm::kExpanded}, Case{ActMode::kFp8, AttentionForm::kAuto}}) {
    const char* name = c.mode == ActMode::kFp8              ? "fp8/auto"
                       : c.form == AttentionForm::kAuto     ? "f32/auto"
                       : c.form == AttentionForm::kAbsorbed ? "f32/absorbed"
                                                            : "f32/expanded";
    SCOPED_TRACE(name);
    ModelOptions o;
    o.act_mode = c.mode;
    o.attention = c.form;
    o.load_mtp = false;
    auto cpu = make_cpu_backend(2);
    auto g32 = make_cuda_backend(0), g16 = make_cuda_backend(0);
    g16->set_act_dtype(DType::kBF16);
    EXPECT_EQ(g32->act_dtype(), DType::kF32);
    auto r_ref = std::make_shared<RoutingRecorder>(*cpu), r32 = std::make_shared<RoutingRecorder>(*g32),
         r16 = std::make_shared<RoutingRecorder>(*g16);
    const std::vector<float> ref = run(*cpu, o, prompt, decode, DType::kF32, false, r_ref);
    const std::vector<float> f32 = run(*g32, o, prompt, decode, DType::kF32, false, r32);
    const std::vector<float> b16 = run(*g16, o, prompt, decode, DType::kF32, false, r16);
    const int64_t rows = static_cast<int64_t>(ref.size()) / V;
    const int64_t flip_cpu = first_flip(*r16, *r_ref, moe_layers(), rows),
                  flip_f32 = first_flip(*r16, *r32, moe_layers(), rows);
    const std::vector<float> ref_p(ref.begin(), ref.begin() + P * V), ref_d(ref.begin() + P * V, ref.end());
    const std::vector<float> b16_p(b16.begin(), b16.begin() + P * V), b16_d(b16.begin() + P * V, b16.end());
    const double e32 = rel_err(f32, ref);
    std::printf("bf16 model %s: fp32 acts vs CPU %.3g; bf16 acts' argmax equal to the CPU's %d/%lld\n", name,
                e32, same_argmax(b16, ref, V), static_cast<long long>(ref.size() / V));
    EXPECT_LT(e32, c.mode == ActMode::kFp8 ? 3e-2 : 1e-3);
    const double row = c.mode == ActMode::kFp8 ? kModelRowFp8 : kModelRow;
    expect_close_until((std::string(name) + " prefill vs CPU").c_str(), b16_p, ref_p, V, row, flip_cpu);
    expect_close_until((std::string(name) + " decode vs CPU").c_str(), b16_d, ref_d, V, row, flip_cpu - P);
    expect_close_until((std::string(name) + " vs GPU fp32").c_str(), b16, f32, V, row, flip_f32);
  }
  // The CUDA defaults: bf16 activations and a bf16 cache.
  ModelOptions o;
  o.load_mtp = false;
  auto cpu = make_cpu_backend(2);
  auto g16 = make_cuda_backend(0);
  g16->set_act_dtype(DType::kBF16);
  auto r_ref = std::make_shared<RoutingRecorder>(*cpu), r16 = std::make_shared<RoutingRecorder>(*g16);
  const std::vector<float> ref = run(*cpu, o, prompt, decode, DType::kF32, false, r_ref);
  const std::vector<float> got = run(*g16, o, prompt, decode, DType::kBF16, false, r16);
  expect_close_until("activations + bf16 cache vs CPU", got, ref, V, kModelRow,
                     first_flip(*r16, *r_ref, moe_layers(), static_cast<int64_t>(ref.size()) / V));
}

// The MTP module with bf16 activations (its concatenated input is an activation; the hidden states it is fed
// stay F32), against the CPU.
TEST_F(CudaBf16Model, MtpDraftWithBf16Activations) {
  std::vector<int32_t> prompt(17);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 211 + 3) % 1024);
  ModelOptions o;
  o.load_mtp = true;
  auto cpu = make_cpu_backend(2);
  auto g16 = make_cuda_backend(0);
  g16->set_act_dtype(DType::kBF16);
  const std::vector<float> ref = run(*cpu, o, prompt, {}, DType::kF32, true);
  const std::vector<float> got = run(*g16, o, prompt, {}, DType::kF32, true);
  const int64_t V = 1024, P = static_cast<int64_t>(prompt.size());
  const std::vector<float> ref_m(ref.begin() + P * V, ref.end()), got_m(got.begin() + P * V, got.end());
  expect_close("MTP drafts vs CPU", got_m, ref_m, V, kModelRow);
  expect_close("main logits vs CPU", std::vector<float>(got.begin(), got.begin() + P * V),
               std::vector<float>(ref.begin(), ref.begin() + P * V), V, kModelRow);
}

// Captured decode steps with bf16 activations replay to the same bits as eager steps.
TEST_F(CudaBf16Model, GraphReplaysEqualUncapturedStepsInBf16) {
  const ModelConfig cfg = load_model_config(dir_);
  const int64_t V = cfg.vocab_size;
  auto decode_run = [&](bool graphs) {
    auto gpu = make_cuda_backend(0);
    gpu->set_act_dtype(DType::kBF16);
    ModelOptions o;
    o.load_mtp = false;
    o.graphs = graphs;
    DeepseekNetwork m(cfg, std::make_shared<WeightStore>(dir_), *gpu, o);
    LatentCache cache(*gpu, m.cache_layers(), cfg.kv_cache_width(), 16, 32 << 20, DType::kBF16);
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

// Expert parallelism with bf16 activations: the exchange goes through the host in fp32 (the bf16 rows widened
// exactly, the partial sums fp32), so against the GPU without EP only the combine's rounding differs.
TEST_F(CudaBf16Model, ExpertParallelOverOneRankNcclInBf16) {
  if (!ep::nccl_built()) GTEST_SKIP() << "this build has no NCCL";
  std::vector<int32_t> prompt(19), decode(3);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 57 + 2) % 1024);
  for (size_t i = 0; i < decode.size(); ++i) decode[i] = static_cast<int32_t>((i * 131 + 9) % 1024);
  ModelOptions o;
  o.load_mtp = false;
  auto plain = make_cuda_backend(0);
  plain->set_act_dtype(DType::kBF16);
  const std::vector<float> want = run(*plain, o, prompt, decode, DType::kBF16);
  const ModelConfig cfg = load_model_config(dir_);
  auto nccl = ep::make_nccl_transport({});
  auto gpu = make_cuda_backend(nccl->device());
  gpu->set_act_dtype(DType::kBF16);
  auto hook = std::make_shared<ep::ExpertParallel>(
      nccl, *gpu, ep::contiguous_placement(cfg.num_hidden_layers, cfg.n_routed_experts, 1), ep::EpOptions{});
  ModelOptions oe = o;
  oe.moe_hook = hook;
  oe.bind_expert = hook->bind_filter();
  const std::vector<float> got = run(*gpu, oe, prompt, decode, DType::kBF16);
  const double e = rel_err(got, want);
  std::printf("bf16 model, EP over one-rank NCCL: rel err vs no EP %.3g\n", e);
  EXPECT_LT(e, kEp);
}

}  // namespace
}  // namespace moert::testing
