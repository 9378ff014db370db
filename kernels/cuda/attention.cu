// Causal attention for MLA, both forms, one block per (query, head): keys in chunks of 32, scores by warps,
// online softmax in fp32 (running maximum subtracted), each thread owning up to 8 output columns. Queries,
// keys, values and the output are fp32 or bf16 (one type T, the kernel's template parameter), the scores,
// the softmax and the accumulators fp32.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kThreads = 128, kChunk = 32, kMaxQ = 1024, kMaxV = kThreads * 8;

struct AttnArgs {
  // expanded
  const void* q = nullptr;
  int64_t ldq = 0;
  const void* k = nullptr;
  int64_t ldk = 0;
  const void* v = nullptr;
  int64_t ldv = 0, dqk = 0, dv = 0;
  const int32_t* k_start = nullptr;
  // latent
  const void* q_lat = nullptr;
  int64_t ldql = 0;
  const void* q_rope = nullptr;
  int64_t ldqr = 0, rope_stride = 0, lat = 0, rope = 0;
  DevPool cache;
  DevPagedKv kv;
  const int32_t* row_seq = nullptr;
  // common
  int64_t heads = 0;
  const int32_t* q_pos = nullptr;
  float scale = 1.0f;
  void* out = nullptr;
  int64_t ldo = 0;
};

template <bool LATENT, class T>
__global__ void __launch_bounds__(kThreads) attention_kernel(AttnArgs a) {
  __shared__ float qs[kMaxQ];
  __shared__ float sc[kChunk], p[kChunk];
  const int64_t i = blockIdx.x, h = blockIdx.y;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t dq = LATENT ? a.lat + a.rope : a.dqk, dv = LATENT ? a.lat : a.dv;
  const int64_t pos1 = static_cast<int64_t>(a.q_pos[i]) + 1;
  const int64_t n = std::max<int64_t>(0, pos1);
  const int32_t* table = LATENT ? a.kv.pages + a.kv.indptr[a.row_seq[i]] : nullptr;
  const int64_t k0 = LATENT ? 0 : a.k_start[i];
  const T* q = static_cast<const T*>(a.q);
  const T* kk = static_cast<const T*>(a.k);
  const T* vv = static_cast<const T*>(a.v);
  const T* q_lat = static_cast<const T*>(a.q_lat);
  const T* q_rope = static_cast<const T*>(a.q_rope);
  for (int64_t c = tid; c < dq; c += kThreads) {
    if (LATENT)
      qs[c] = c < a.lat ? ld_act(q_lat, i * a.ldql + h * a.lat + c)
                        : ld_act(q_rope, i * a.ldqr + h * a.rope_stride + (c - a.lat));
    else
      qs[c] = ld_act(q, i * a.ldq + h * a.dqk + c);
  }
  __syncthreads();
  // Key j's element c, and value j's element c (the latent row itself in the absorbed form).
  const size_t es = a.cache.bf16 ? 2 : 4;
  auto latent_row = [&](int64_t j) -> const void* {
    const int64_t off = static_cast<int64_t>(table[j / a.cache.page_rows]) * a.cache.page_stride +
                        (j % a.cache.page_rows) * a.cache.width;
    return static_cast<const uint8_t*>(a.cache.base) + off * es;
  };
  auto key_at = [&](int64_t j, int64_t c) -> float {
    if (LATENT) return cache_load(latent_row(j), a.cache.bf16, c);
    return ld_act(kk, (k0 + j) * a.ldk + h * a.dqk + c);
  };
  auto value_at = [&](int64_t j, int64_t c) -> float {
    if (LATENT) return cache_load(latent_row(j), a.cache.bf16, c);
    return ld_act(vv, (k0 + j) * a.ldv + h * a.dv + c);
  };
  float m = -INFINITY, l = 0.0f, acc[8];
#pragma unroll
  for (int u = 0; u < 8; ++u) acc[u] = 0.0f;
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int cnt = static_cast<int>(std::min<int64_t>(kChunk, n - c0));
    for (int jj = warp; jj < cnt; jj += kThreads / 32) {
      float d = 0.0f;
      for (int64_t c = lane; c < dq; c += 32) d = fmaf(qs[c], key_at(c0 + jj, c), d);
      d = warp_sum(d);
      if (lane == 0) sc[jj] = d * a.scale;
    }
    __syncthreads();
    float cmax = -INFINITY;
    for (int jj = 0; jj < cnt; ++jj) cmax = fmaxf(cmax, sc[jj]);
    const float new_m = fmaxf(m, cmax);
    const float corr = expf(m - new_m);
    if (tid < cnt) p[tid] = expf(sc[tid] - new_m);
    __syncthreads();
    float csum = 0.0f;
    for (int jj = 0; jj < cnt; ++jj) csum += p[jj];
    l = l * corr + csum;
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t c = tid + kThreads * u;
      if (c < dv) {
        float s = acc[u] * corr;
        for (int jj = 0; jj < cnt; ++jj) s = fmaf(p[jj], value_at(c0 + jj, c), s);
        acc[u] = s;
      }
    }
    m = new_m;
    __syncthreads();
  }
  const float inv = n > 0 ? 1.0f / l : 0.0f;
#pragma unroll
  for (int u = 0; u < 8; ++u) {
    const int64_t c = tid + kThreads * u;
    if (c < dv) st_act(static_cast<T*>(a.out), i * a.ldo + h * dv + c, acc[u] * inv);
  }
}

}  // namespace

cudaError_t attention_expanded(const DevAct& q, int64_t t, const DevAct& k, const DevAct& v,
                               const int32_t* k_start, int64_t heads, int64_t dqk, int64_t dv,
                               const int32_t* q_pos, float scale, const DevAct& out, cudaStream_t s) {
  if (t <= 0 || heads <= 0) return cudaSuccess;
  if (dqk > kMaxQ || dv > kMaxV || heads > 65535 || t > 0x7fffffff) return cudaErrorInvalidValue;
  if (k.bf16 != q.bf16 || v.bf16 != q.bf16 || out.bf16 != q.bf16) return cudaErrorInvalidValue;
  AttnArgs a;
  a.q = q.data;
  a.ldq = q.ld;
  a.k = k.data;
  a.ldk = k.ld;
  a.v = v.data;
  a.ldv = v.ld;
  a.k_start = k_start;
  a.dqk = dqk;
  a.dv = dv;
  a.heads = heads;
  a.q_pos = q_pos;
  a.scale = scale;
  a.out = out.data;
  a.ldo = out.ld;
  const dim3 grid(static_cast<unsigned>(t), static_cast<unsigned>(heads));
  MOERT_CUDA_ACT_SWITCH(q.bf16, T, { attention_kernel<false, T><<<grid, kThreads, 0, s>>>(a); });
  return launch_status();
}

cudaError_t attention_latent(const DevAct& q_lat, const DevAct& q_rope, int64_t rope_stride, int64_t t,
                             const DevPool& cache, const DevPagedKv& kv, const int32_t* row_seq, int64_t lat,
                             int64_t rope, int64_t heads, const int32_t* q_pos, float scale,
                             const DevAct& out, cudaStream_t s) {
  if (t <= 0 || heads <= 0) return cudaSuccess;
  if (lat + rope > kMaxQ || lat > kMaxV || heads > 65535 || t > 0x7fffffff) return cudaErrorInvalidValue;
  if (q_rope.bf16 != q_lat.bf16 || out.bf16 != q_lat.bf16) return cudaErrorInvalidValue;
  AttnArgs a;
  a.q_lat = q_lat.data;
  a.ldql = q_lat.ld;
  a.q_rope = q_rope.data;
  a.ldqr = q_rope.ld;
  a.rope_stride = rope_stride;
  a.lat = lat;
  a.rope = rope;
  a.cache = cache;
  a.kv = kv;
  a.row_seq = row_seq;
  a.heads = heads;
  a.q_pos = q_pos;
  a.scale = scale;
  a.out = out.data;
  a.ldo = out.ld;
  const dim3 grid(static_cast<unsigned>(t), static_cast<unsigned>(heads));
  MOERT_CUDA_ACT_SWITCH(q_lat.bf16, T, { attention_kernel<true, T><<<grid, kThreads, 0, s>>>(a); });
  return launch_status();
}

}  // namespace moert::cuda
