// Every op of the CUDA backend against the CPU backend's op (the oracle) on fresh random inputs, outputs
// poisoned with NaN first so an unwritten element fails; error = ||out - ref|| / ||ref|| per dtype bound.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <numeric>

#include <cuda_runtime_api.h>

#include "cpu/numeric_types.h"
#include "cuda_test_util.h"
#include "model/moe_ffn.h"
#include "model/step_batch.h"

namespace moert::testing {
namespace {

constexpr double kF32 = 2e-5;    // fp32 arithmetic, different summation order
constexpr double kFp8Lt = 1e-2;  // FP8 tensor cores (cuBLASLt) on the same quantised activations

// Relative L2 error under a bound (gtest prints the measured value on failure).
#define EXPECT_REL(got, ref, bound) EXPECT_LT(rel_err(got, ref), bound)

TEST_F(CudaOps, Embedding) {
  auto table = weight(DType::kBF16, 97, 300, 1.0f);
  std::vector<int32_t> ids = {3, 96, 0, 50, 50, 7};
  auto [ic, ig] = pair_i32(ids, 6, 1);
  auto [oc, og] = outputs(6, 300);
  cpu->embedding(table->cpu.w, ic, oc);
  gpu->embedding(table->gpu.w, ig, og);
  EXPECT_REL(host(*gpu, og), host(*cpu, oc), 1e-7);
}

TEST_F(CudaOps, RmsNorm) {
  for (DType dt : {DType::kBF16, DType::kF32}) {
    auto w = weight(dt, 1, 520, 1.0f);
    auto x = randn(7 * 520, 3.0f);
    auto [xc, xg] = pair(x, 7, 520);
    auto [oc, og] = outputs(7, 520);
    cpu->rmsnorm(xc, w->cpu.w, 1e-6f, oc);
    gpu->rmsnorm(xg, w->gpu.w, 1e-6f, og);
    EXPECT_REL(host(*gpu, og), host(*cpu, oc), 1e-6);
    cpu->rmsnorm(xc, w->cpu.w, 1e-6f, xc);  // in place
    gpu->rmsnorm(xg, w->gpu.w, 1e-6f, xg);
    EXPECT_REL(host(*gpu, xg), host(*cpu, xc), 1e-6);
  }
}

struct LinearCase {
  DType dt;
  int64_t m, n, k;
};

TEST_F(CudaOps, Linear) {
  const LinearCase cases[] = {
      {DType::kF8E4M3, 1, 256, 512},  {DType::kF8E4M3, 5, 576, 384},  {DType::kF8E4M3, 16, 300, 200},
      {DType::kF8E4M3, 17, 256, 512}, {DType::kF8E4M3, 64, 576, 384}, {DType::kF8E4M3, 130, 384, 1024},
      {DType::kF8E4M3, 33, 300, 200}, {DType::kBF16, 1, 1000, 512},   {DType::kBF16, 40, 130, 72},
      {DType::kF32, 3, 64, 96},       {DType::kF32, 70, 64, 96},
  };
  for (const auto& c : cases)
    for (ActMode mode : {ActMode::kF32, ActMode::kFp8}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(c.dt) << " m=" << c.m << " n=" << c.n << " k=" << c.k
                                        << " mode=" << (mode == ActMode::kFp8 ? "fp8" : "f32"));
      auto w = weight(c.dt, c.n, c.k);
      // x is a column slice of a wider matrix (row stride != k)
      auto xh = randn(c.m * (c.k + 8));
      auto [xc_full, xg_full] = pair(xh, c.m, c.k + 8);
      Tensor xc = xc_full.slice_cols(4, c.k), xg = xg_full.slice_cols(4, c.k);
      auto [oc, og] = outputs(c.m, c.n);
      cpu->linear(xc, w->cpu, oc, mode);
      gpu->linear(xg, w->gpu, og, mode);
      const bool lt_possible = mode == ActMode::kFp8 && c.dt == DType::kF8E4M3 && c.m > 16;
      EXPECT_REL(host(*gpu, og), host(*cpu, oc), lt_possible ? kFp8Lt : kF32);
    }
  const CudaGemmStats st = cuda_gemm_stats(*gpu);
  std::printf("gemm paths: cuBLASLt fp8 %lld, small-M %lld, tiled %lld, cuBLASLt fallbacks %lld\n", st.lt_fp8,
              st.small_m, st.tiled, st.lt_fallbacks);
}

TEST_F(CudaOps, LinearRowSlice) {
  auto w = weight(DType::kF8E4M3, 640, 256);
  for (auto [r0, cnt] : {std::pair<int64_t, int64_t>{128, 256}, {64, 100}, {0, 640}})
    for (ActMode mode : {ActMode::kF32, ActMode::kFp8})
      for (int64_t m : {2, 24}) {
        auto x = randn(m * 256);
        auto [xc, xg] = pair(x, m, 256);
        auto [oc, og] = outputs(m, cnt);
        cpu->linear(xc, w->cpu.rows(r0, cnt), oc, mode);
        gpu->linear(xg, w->gpu.rows(r0, cnt), og, mode);
        EXPECT_REL(host(*gpu, og), host(*cpu, oc), mode == ActMode::kFp8 && m > 16 ? kFp8Lt : kF32)
            << "rows " << r0 << "+" << cnt << " m=" << m;
      }
}

TEST_F(CudaOps, RopeSiluAdd) {
  const int64_t T = 6, heads = 3, stride = 192, dim = 64;
  std::vector<float> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / dim) * (0.5f + 0.01f * i);
  std::vector<int32_t> pos = {0, 1, 17, 300, 4095, 12345};
  auto [pc, pg] = pair_i32(pos, T, 1);
  auto x = randn(T * heads * stride);
  auto [xc, xg] = pair(x, T, heads * stride);
  Tensor sc = xc.slice_cols(128, heads * stride - 128), sg = xg.slice_cols(128, heads * stride - 128);
  auto [fc, fg] = pair(inv, 1, dim / 2);
  cpu->rope(sc, heads, stride, dim, pc, fc, 1.2f);
  gpu->rope(sg, heads, stride, dim, pg, fg, 1.2f);
  EXPECT_REL(host(*gpu, xg), host(*cpu, xc), 1e-5);

  auto g = randn(T * 300, 3.0f), u = randn(T * 300);
  auto [gc, gg] = pair(g, T, 300);
  auto [uc, ug] = pair(u, T, 300);
  auto [oc, og] = outputs(T, 300);
  cpu->silu_mul(gc, uc, oc);
  gpu->silu_mul(gg, ug, og);
  EXPECT_REL(host(*gpu, og), host(*cpu, oc), 1e-6);
  cpu->add(gc, uc);
  gpu->add(gg, ug);
  EXPECT_REL(host(*gpu, ug), host(*cpu, uc), 1e-7);
}

TEST_F(CudaOps, AttentionExpandedVarlen) {
  // Two sequences in one call: 9 queries after 37 cached tokens, and a 5-token prompt; keys back to back.
  const int64_t heads = 4, dqk = 192, dv = 128;
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
  auto [qc, qg] = pair(randn(t * heads * dqk), t, heads * dqk);
  auto [kc, kg] = pair(randn(keys * heads * dqk), keys, heads * dqk);
  auto [vc, vg] = pair(randn(keys * heads * dv), keys, heads * dv);
  auto [oc, og] = outputs(t, heads * dv);
  cpu->attention_expanded(qc, kc, vc, heads, pc, kc0, 0.07f, oc);
  gpu->attention_expanded(qg, kg, vg, heads, pg, kg0, 0.07f, og);
  EXPECT_REL(host(*gpu, og), host(*cpu, oc), kF32);
}

TEST_F(CudaOps, MlaAbsorb) {
  const int64_t heads = 4, nope = 128, rope = 64, vdim = 128, lat = 512, t = 3, qk = nope + rope;
  for (DType dt : {DType::kF8E4M3, DType::kBF16}) {
    auto kvb = weight(dt, heads * (nope + vdim), lat);
    for (ActMode mode : {ActMode::kF32, ActMode::kFp8}) {
      auto [qc, qg] = pair(randn(t * heads * qk), t, heads * qk);
      auto [lc, lg] = outputs(t, heads * lat);
      cpu->mla_absorb_q(qc, qk, kvb->cpu, heads, nope, vdim, lc, mode);
      gpu->mla_absorb_q(qg, qk, kvb->gpu, heads, nope, vdim, lg, mode);
      EXPECT_REL(host(*gpu, lg), host(*cpu, lc), kF32) << "absorb_q " << dtype_name(dt);
      auto [ic, ig] = pair(randn(t * heads * lat), t, heads * lat);
      auto [oc, og] = outputs(t, heads * vdim);
      cpu->mla_absorb_out(ic, kvb->cpu, heads, nope, vdim, oc, mode);
      gpu->mla_absorb_out(ig, kvb->gpu, heads, nope, vdim, og, mode);
      EXPECT_REL(host(*gpu, og), host(*cpu, oc), kF32) << "absorb_out " << dtype_name(dt);
    }
  }
}

float round_bf16(float f) {
  return kernels::bf16_to_float(kernels::float_to_bf16(f));
}

// A paged pool on both backends with the same random content, and two sequences whose shuffled pages
// form one CSR table (as a step batch lays them out).
struct Paged {
  LatentPool cpu, gpu;
  std::vector<int32_t> indptr{0}, pages, kv_len;
};

// The slot-mapped cache ops and the batched latent attention, over an fp32 or a bf16 cache.
class CudaCache : public CudaOps {
 protected:
  void cache_and_latent_attention(bool bf16);
};

void CudaCache::cache_and_latent_attention(bool bf16) {
  const int64_t heads = 4, lat = 512, rope = 64, width = lat + rope, npages = 12, page_rows = 16;
  Paged pg;
  // bf16: the pool's content bf16-exact on both sides (written to the GPU's bf16 pool through cache_write),
  // so only the rows this step writes are rounded.
  std::vector<float> content = randn(npages * page_rows * width);
  if (bf16)
    for (float& v : content) v = round_bf16(v);
  auto [poolc, poolg] = pair(content, npages, page_rows * width);
  if (bf16) {
    poolg = gpu->empty(DType::kBF16, npages, page_rows * width);
    std::vector<int32_t> every(npages * page_rows);
    std::iota(every.begin(), every.end(), 0);
    auto [ec, eg] = pair_i32(every, npages * page_rows, 1);
    auto [vc, vg] = pair(content, npages * page_rows, width);
    gpu->cache_write(vg, {poolg, page_rows, page_rows * width, width}, eg);
  }
  pg.cpu = {poolc, page_rows, page_rows * width, width};
  pg.gpu = {poolg, page_rows, page_rows * width, width};
  std::vector<int32_t> perm(npages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  // Sequence 0: 50 cached + 3 new tokens (4 pages); sequence 1: 70 cached + 1 new (5 pages).
  const int64_t past[2] = {50, 70}, n[2] = {3, 1};
  int next = 0;
  std::vector<int32_t> slots, pos, row_seq;
  for (int s = 0; s < 2; ++s) {
    const int64_t len = past[s] + n[s], np = (len + page_rows - 1) / page_rows;
    const int32_t first = static_cast<int32_t>(pg.pages.size());
    for (int64_t p = 0; p < np; ++p) pg.pages.push_back(perm[next++]);
    pg.indptr.push_back(static_cast<int32_t>(pg.pages.size()));
    pg.kv_len.push_back(static_cast<int32_t>(len));
    for (int64_t i = 0; i < n[s]; ++i) {
      const int64_t p = past[s] + i;
      slots.push_back(static_cast<int32_t>(pg.pages[first + p / page_rows] * page_rows + p % page_rows));
      pos.push_back(static_cast<int32_t>(p));
      row_seq.push_back(s);
    }
  }
  const int64_t t = static_cast<int64_t>(slots.size());
  auto [sc, sg] = pair_i32(slots, t, 1);
  // one cache write for every new token, then a gather of the written slots
  auto [rc, rg] = pair(randn(t * width), t, width);
  cpu->cache_write(rc, pg.cpu, sc);
  gpu->cache_write(rg, pg.gpu, sg);
  auto [oc, og] = outputs(t, width);
  cpu->cache_gather(pg.cpu, sc, oc);
  gpu->cache_gather(pg.gpu, sg, og);
  std::vector<float> written = host(*cpu, rc);
  if (bf16)
    for (float& v : written) v = round_bf16(v);  // round to nearest even, as the GPU stores them
  EXPECT_EQ(host(*gpu, og), written);
  EXPECT_EQ(host(*cpu, oc), host(*cpu, rc));
  // attention over the latent for both sequences in one call: q_rope inside a wider q (head stride 192)
  PagedKv kc, kg;
  std::tie(kc.indptr, kg.indptr) = pair_i32(pg.indptr, 3, 1);
  std::tie(kc.pages, kg.pages) = pair_i32(pg.pages, static_cast<int64_t>(pg.pages.size()), 1);
  std::tie(kc.kv_len, kg.kv_len) = pair_i32(pg.kv_len, 2, 1);
  kc.seqs = kg.seqs = 2;
  kc.max_kv_len = kg.max_kv_len = 71;
  auto [pc, pgp] = pair_i32(pos, t, 1);
  auto [rsc, rsg] = pair_i32(row_seq, t, 1);
  auto [qlc, qlg] = pair(randn(t * heads * lat, 0.05f), t, heads * lat);
  auto [qc, qg] = pair(randn(t * heads * 192, 0.05f), t, heads * 192);
  Tensor qrc = qc.slice_cols(128, heads * 192 - 128), qrg = qg.slice_cols(128, heads * 192 - 128);
  auto [ac, ag] = outputs(t, heads * lat);
  if (bf16) {
    // The CPU attends over the same rounded rows: then only the summation order differs.
    Tensor back = cpu->empty(DType::kF32, t, width);
    cpu->copy_from_host(written.data(), back);
    cpu->cache_write(back, pg.cpu, sc);
  }
  cpu->attention_latent(qlc, qrc, 192, pg.cpu, kc, rsc, heads, lat, rope, pc, 0.1f, ac);
  gpu->attention_latent(qlg, qrg, 192, pg.gpu, kg, rsg, heads, lat, rope, pgp, 0.1f, ag);
  EXPECT_REL(host(*gpu, ag), host(*cpu, ac), kF32);
}

TEST_F(CudaCache, Fp32CacheAndLatentAttentionOverABatch) {
  cache_and_latent_attention(false);
}
TEST_F(CudaCache, Bf16CacheAndLatentAttentionOverABatch) {
  cache_and_latent_attention(true);
}

TEST_F(CudaOps, MlaExpandKv) {
  const int64_t heads = 3, nope = 128, rope = 64, vdim = 96, s = 11;
  auto [kvc, kvg] = pair(randn(s * heads * (nope + vdim)), s, heads * (nope + vdim));
  auto [rc, rg] = pair(randn(s * (512 + rope)), s, 512 + rope);
  Tensor krc = rc.slice_cols(512, rope), krg = rg.slice_cols(512, rope);
  auto [kc, kg] = outputs(s, heads * (nope + rope));
  auto [vc, vg] = outputs(s, heads * vdim);
  cpu->mla_expand_kv(kvc, krc, heads, nope, vdim, kc, vc);
  gpu->mla_expand_kv(kvg, krg, heads, nope, vdim, kg, vg);
  EXPECT_REL(host(*gpu, kg), host(*cpu, kc), 1e-7);
  EXPECT_REL(host(*gpu, vg), host(*cpu, vc), 1e-7);
}

TEST_F(CudaOps, MoeRoute) {
  struct Case {
    RoutingParams cfg;
    bool bias;
  };
  std::vector<Case> cases;
  RoutingParams v3;
  v3.experts = 64;
  v3.top_k = 6;
  v3.n_group = 8;
  v3.topk_group = 4;
  v3.routed_scale = 2.5f;
  cases.push_back({v3, true});
  RoutingParams v3full = v3;
  v3full.experts = 256;
  v3full.top_k = 8;
  cases.push_back({v3full, true});
  RoutingParams v2 = v3;
  v2.sigmoid = false;
  v2.group_sum_top2 = false;
  v2.normalize = false;
  v2.scale_only_unnormalized = true;
  v2.routed_scale = 16.0f;
  cases.push_back({v2, false});
  RoutingParams greedy = v2;
  greedy.grouped = false;
  greedy.normalize = true;
  cases.push_back({greedy, false});
  for (const auto& c : cases) {
    const int64_t T = 37, E = c.cfg.experts, K = c.cfg.top_k;
    auto [lc, lg] = pair(randn(T * E, 2.0f), T, E);
    auto b = weight(DType::kF32, 1, E, 0.1f);
    Tensor bc = c.bias ? b->cpu.w : Tensor{}, bg = c.bias ? b->gpu.w : Tensor{};
    Tensor ic = cpu->empty(DType::kI32, T, K), ig = gpu->empty(DType::kI32, T, K);
    auto [wc, wg] = outputs(T, K);
    cpu->moe_route(lc, bc, c.cfg, ic, wc);
    gpu->moe_route(lg, bg, c.cfg, ig, wg);
    // The backend's own copy (ordered on its stream), never a raw copy on the legacy stream.
    EXPECT_EQ(host_i32(*gpu, ig), host_i32(*cpu, ic)) << "experts " << E;
    EXPECT_REL(host(*gpu, wg), host(*cpu, wc), 1e-5);
  }
}

TEST_F(CudaOps, MoeExperts) {
  const int64_t E = 8, hidden = 256, inter = 128, top_k = 3;
  std::vector<std::unique_ptr<HostWeight>> hw;
  std::vector<ExpertWeights> ec(E), eg(E);
  for (int64_t e = 0; e < E; ++e) {
    for (int part = 0; part < 3; ++part) {
      hw.push_back(part < 2 ? weight(DType::kF8E4M3, inter, hidden) : weight(DType::kF8E4M3, hidden, inter));
      WeightMatrix& mc = part == 0 ? ec[e].gate : part == 1 ? ec[e].up : ec[e].down;
      WeightMatrix& mg = part == 0 ? eg[e].gate : part == 1 ? eg[e].up : eg[e].down;
      mc = hw.back()->cpu;
      mg = hw.back()->gpu;
    }
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
      auto [xc, xg] = pair(randn(T * hidden), T, hidden);
      auto [oc, og] = outputs(T, hidden);
      routed_experts(*cpu, pc, xc, ic, wc, oc, mode);
      routed_experts(*gpu, pg, xg, ig, wg, og, mode);
      // FP8: a last-bit difference in silu(gate) * up may flip one e4m3 rounding of the down projection's
      // input.
      EXPECT_REL(host(*gpu, og), host(*cpu, oc), mode == ActMode::kFp8 ? kFp8Lt : kF32) << "T=" << T;
      // The grouping itself: the same offsets and (token, slot) rows as the CPU's counting sort.
      MoeGrouping gc, gg;
      cpu->moe_group(ic, pc, gc);
      gpu->moe_group(ig, pg, gg);
      EXPECT_EQ(host_i32(*gpu, gg.offsets), host_i32(*cpu, gc.offsets)) << "T=" << T;
      EXPECT_EQ(host_i32(*gpu, gg.slot_row), host_i32(*cpu, gc.slot_row)) << "T=" << T;
    }
}

// The device sampler against the host's (the CPU backend's) on the same logits and draws: greedy rows (with
// and without penalties) exactly, sampled rows (temperature, top-k, top-p, min-p) on nearly every draw
// (float against double sums may move a draw that falls on a boundary).
TEST_F(CudaOps, DeviceSamplerMatchesTheHostSampler) {
  const int64_t V = 5003;
  std::vector<SamplingParams> ps(7);
  ps[1].repetition_penalty = 1.3;
  ps[1].presence_penalty = 0.5;
  ps[2].temperature = 0.8;
  ps[3].temperature = 1.0, ps[3].top_k = 20;
  ps[4].temperature = 1.0, ps[4].top_p = 0.9;
  ps[5].temperature = 1.2, ps[5].min_p = 0.1, ps[5].repetition_penalty = 1.1;
  ps[6].temperature = 0.7, ps[6].top_k = 50, ps[6].top_p = 0.8, ps[6].presence_penalty = 0.3;
  ps[0].frequency_penalty = 0.7;  // greedy with frequency (token 7 is twice in the output)
  const int64_t R = static_cast<int64_t>(ps.size());
  auto [lc, lg] = pair(randn(R * V, 3.0f), R, V);
  TokenHistory h;
  h.add_prompt({1, 2, 3, 40, 500});
  for (int32_t t : {3, 7, 7, 4000}) h.add_output(t);
  int same_greedy = 0, same_sampled = 0, greedy = 0, sampled = 0;
  for (uint64_t seed = 0; seed < 150; ++seed) {
    std::vector<SamplingRng> rc(R, SamplingRng(seed)), rg(R, SamplingRng(seed));
    std::vector<SampleRow> rows_c(R), rows_g(R);
    for (int64_t i = 0; i < R; ++i) {
      rows_c[i] = {ps[i], &rc[i], &h};
      rows_g[i] = {ps[i], &rg[i], &h};
    }
    std::vector<int32_t> params, toks;
    StepBatch::pack_sampling(rows_g, params, toks);
    toks.push_back(0);
    SampleTable table;
    table.rows = R;
    table.params = pair_i32(params, static_cast<int64_t>(params.size()), 1).second;
    table.tokens = pair_i32(toks, static_cast<int64_t>(toks.size()), 1).second;
    std::vector<int32_t> ic(R), ig(R);
    cpu->sample(lc, rows_c, nullptr, ic.data());
    gpu->sample(lg, rows_g, &table, ig.data());
    for (int64_t i = 0; i < R; ++i) {
      const bool g = ps[i].temperature <= 0.0;
      (g ? greedy : sampled) += 1;
      (g ? same_greedy : same_sampled) += ic[i] == ig[i];
      if (g) {
        EXPECT_EQ(ig[i], ic[i]) << "greedy row " << i << " seed " << seed;
      }
    }
  }
  std::printf("device sampler: greedy %d/%d, sampled %d/%d equal to the host's\n", same_greedy, greedy,
              same_sampled, sampled);
  EXPECT_GE(same_sampled, sampled * 97 / 100);
  // Non-finite logits: -1.
  std::vector<float> bad = randn(V);
  bad[17] = std::numeric_limits<float>::quiet_NaN();
  auto [bc, bg] = pair(bad, 1, V);
  std::vector<SamplingRng> r1(1);
  std::vector<SampleRow> one{{SamplingParams{}, &r1[0], nullptr}};
  std::vector<int32_t> params, toks{0};
  StepBatch::pack_sampling(one, params, toks);
  SampleTable t1;
  t1.rows = 1;
  t1.params = pair_i32(params, static_cast<int64_t>(params.size()), 1).second;
  t1.tokens = pair_i32(toks, 1, 1).second;
  int32_t id = 0;
  gpu->sample(bg, one, &t1, &id);
  EXPECT_EQ(id, -1);
}

// The FP8 GEMM path is decided by shape before anything is quantised: cuBLASLt's block-scaled GEMM where M
// and N are multiples of 4 (M > 16), the own kernels elsewhere; no silent fallback passes.
TEST_F(CudaOps, Fp8GemmPathFollowsTheShape) {
  struct Case {
    int64_t m, n, k;
    bool lt;
  };
  const Case cases[] = {{64, 576, 384, true},
                        {32, 128, 256, true},
                        {33, 576, 384, false},
                        {64, 302, 200, false},
                        {8, 576, 384, false}};
  for (const Case& c : cases) {
    auto w = weight(DType::kF8E4M3, c.n, c.k);
    auto [xc, xg] = pair(randn(c.m * c.k), c.m, c.k);
    auto [oc, og] = outputs(c.m, c.n);
    const CudaGemmStats before = cuda_gemm_stats(*gpu);
    cpu->linear(xc, w->cpu, oc, ActMode::kFp8);
    gpu->linear(xg, w->gpu, og, ActMode::kFp8);
    const CudaGemmStats after = cuda_gemm_stats(*gpu);
    EXPECT_EQ(after.lt_fp8 - before.lt_fp8, c.lt ? 1 : 0) << "m=" << c.m << " n=" << c.n << " k=" << c.k;
    EXPECT_EQ(after.lt_fallbacks, before.lt_fallbacks) << "cuBLASLt refused m=" << c.m << " n=" << c.n;
    EXPECT_REL(host(*gpu, og), host(*cpu, oc), c.lt ? kFp8Lt : kF32);
  }
}

}  // namespace
}  // namespace moert::testing
