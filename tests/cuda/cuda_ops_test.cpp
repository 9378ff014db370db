// Every op of the CUDA backend against the CPU backend's op (the oracle) on fresh random inputs, outputs
// poisoned with NaN first so an unwritten element fails; error = ||out - ref|| / ||ref|| per dtype bound.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include <cuda_runtime_api.h>

#include "cuda_test_util.h"

namespace moert::testing {
namespace {

constexpr double kF32 = 2e-5;      // fp32 arithmetic, different summation order
constexpr double kFp8Lt = 1e-2;    // FP8 tensor cores (cuBLASLt) on the same quantised activations

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
      {DType::kF8E4M3, 1, 256, 512},   {DType::kF8E4M3, 5, 576, 384},  {DType::kF8E4M3, 16, 300, 200},
      {DType::kF8E4M3, 17, 256, 512},  {DType::kF8E4M3, 64, 576, 384}, {DType::kF8E4M3, 130, 384, 1024},
      {DType::kF8E4M3, 33, 300, 200},  {DType::kBF16, 1, 1000, 512},   {DType::kBF16, 40, 130, 72},
      {DType::kF32, 3, 64, 96},        {DType::kF32, 70, 64, 96},
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
  cpu->rope(sc, heads, stride, dim, pc, inv, 1.2f);
  gpu->rope(sg, heads, stride, dim, pg, inv, 1.2f);
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

TEST_F(CudaOps, AttentionExpanded) {
  const int64_t heads = 4, dqk = 192, dv = 128, past = 37, t = 9, s = past + t;
  std::vector<int32_t> pos(t);
  std::iota(pos.begin(), pos.end(), static_cast<int32_t>(past));
  auto [pc, pg] = pair_i32(pos, t, 1);
  auto [qc, qg] = pair(randn(t * heads * dqk), t, heads * dqk);
  auto [kc, kg] = pair(randn(s * heads * dqk), s, heads * dqk);
  auto [vc, vg] = pair(randn(s * heads * dv), s, heads * dv);
  auto [oc, og] = outputs(t, heads * dv);
  cpu->attention_expanded(qc, kc, vc, heads, pc, 0.07f, oc);
  gpu->attention_expanded(qg, kg, vg, heads, pg, 0.07f, og);
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

// A paged pool on both backends with the same random content and a shuffled page table.
struct Paged {
  Tensor cpu_pool, gpu_pool;
  std::vector<int32_t> table;
  int64_t page_rows = 16, width = 0;
  LatentCacheView view(const Tensor& pool, int64_t length) const {
    LatentCacheView v;
    v.pool = pool;
    v.page_table = table.data();
    v.page_rows = page_rows;
    v.page_stride = page_rows * width;
    v.length = length;
    return v;
  }
};

TEST_F(CudaOps, CacheAndLatentAttention) {
  const int64_t heads = 4, lat = 512, rope = 64, width = lat + rope, pages = 9, past = 50, t = 3;
  Paged pg;
  pg.width = width;
  std::tie(pg.cpu_pool, pg.gpu_pool) = pair(randn(pages * pg.page_rows * width), pages, pg.page_rows * width);
  pg.table.resize(pages);
  std::iota(pg.table.begin(), pg.table.end(), 0);
  std::shuffle(pg.table.begin(), pg.table.end(), rng);
  // cache_write of t new rows at past, then cache_read of everything
  auto [rc, rg] = pair(randn(t * width), t, width);
  cpu->cache_write(rc, pg.view(pg.cpu_pool, past), past);
  gpu->cache_write(rg, pg.view(pg.gpu_pool, past), past);
  auto [oc, og] = outputs(past + t, width);
  cpu->cache_read(pg.view(pg.cpu_pool, past + t), past + t, oc);
  gpu->cache_read(pg.view(pg.gpu_pool, past + t), past + t, og);
  EXPECT_REL(host(*gpu, og), host(*cpu, oc), 1e-7);
  // attention over the latent: q_rope inside a wider q (head stride 192)
  std::vector<int32_t> pos = {static_cast<int32_t>(past), static_cast<int32_t>(past + 1), static_cast<int32_t>(past + 2)};
  auto [pc, pgp] = pair_i32(pos, t, 1);
  auto [qlc, qlg] = pair(randn(t * heads * lat, 0.05f), t, heads * lat);
  auto [qc, qg] = pair(randn(t * heads * 192, 0.05f), t, heads * 192);
  Tensor qrc = qc.slice_cols(128, heads * 192 - 128), qrg = qg.slice_cols(128, heads * 192 - 128);
  auto [ac, ag] = outputs(t, heads * lat);
  cpu->attention_latent(qlc, qrc, 192, pg.view(pg.cpu_pool, past), heads, lat, rope, pc, 0.1f, ac);
  gpu->attention_latent(qlg, qrg, 192, pg.view(pg.gpu_pool, past), heads, lat, rope, pgp, 0.1f, ag);
  EXPECT_REL(host(*gpu, ag), host(*cpu, ac), kF32);
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
    RouterConfig cfg;
    bool bias;
  };
  std::vector<Case> cases;
  RouterConfig v3;
  v3.experts = 64; v3.top_k = 6; v3.n_group = 8; v3.topk_group = 4; v3.routed_scale = 2.5f;
  cases.push_back({v3, true});
  RouterConfig v3full = v3;
  v3full.experts = 256; v3full.top_k = 8;
  cases.push_back({v3full, true});
  RouterConfig v2 = v3;
  v2.sigmoid = false; v2.group_sum_top2 = false; v2.normalize = false; v2.scale_only_unnormalized = true;
  v2.routed_scale = 16.0f;
  cases.push_back({v2, false});
  RouterConfig greedy = v2;
  greedy.grouped = false; greedy.normalize = true;
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
    std::vector<int32_t> idc(T * K), idg(T * K);
    std::copy(ic.ptr<int32_t>(), ic.ptr<int32_t>() + T * K, idc.begin());
    cudaMemcpy(idg.data(), ig.data, T * K * 4, cudaMemcpyDeviceToHost);
    EXPECT_EQ(idg, idc) << "experts " << E;
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
  std::vector<const ExpertWeights*> pc(E), pg(E);
  for (int64_t e = 0; e < E; ++e) pc[e] = &ec[e], pg[e] = &eg[e];
  pc[5] = pg[5] = nullptr;  // held by another rank
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
      cpu->moe_experts(xc, ic, wc, pc, oc, mode);
      gpu->moe_experts(xg, ig, wg, pg, og, mode);
      EXPECT_REL(host(*gpu, og), host(*cpu, oc), mode == ActMode::kFp8 && T > 16 ? kFp8Lt : kF32) << "T=" << T;
    }
}

}  // namespace
}  // namespace moert::testing
