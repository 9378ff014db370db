// FP32-accumulating GEMMs that read the weight in its stored type (FP8 with block scales, BF16, F16, F32)
// and dequantise on the fly: a 64x64 tiled kernel (any shape, both x @ W^T and x @ W, batched) and a
// small-M kernel (one warp per output column, 8-element vector loads) for decode. The activations x and the
// output y are fp32 or bf16 (x's type a template parameter, y's a uniform branch at the one store); the
// products and sums are fp32 either way.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, kThreads = 256;

template <DType WT, bool TRANS, class TX>
__global__ void __launch_bounds__(kThreads)
    gemm_tiled_kernel(const TX* x, int64_t M, int64_t ldx, DevWeight w, int64_t N, int64_t K, void* y,
                      bool y_bf16, int64_t ldy, GemmBatch b) {
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const int64_t batch = blockIdx.z;
  x += batch * b.x_bs;
  const int64_t y0 = batch * b.y_bs;
  const int64_t wrow = batch * b.w_row_bs;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int idx = tid + kThreads * r;
      {  // x tile: 64 rows x 16 k
        const int ml = idx / BK, kl = idx % BK;
        const int64_t m = m0 + ml, k = k0 + kl;
        As[kl][ml] = (m < M && k < K) ? ld_act(x, m * ldx + k) : 0.0f;
      }
      if (TRANS) {  // B(k, n) = W[n, k]
        const int nl = idx / BK, kl = idx % BK;
        const int64_t n = n0 + nl, k = k0 + kl;
        Bs[kl][nl] = (n < N && k < K) ? load_weight<WT>(w, wrow + n, k) : 0.0f;
      } else {  // B(k, n) = W[k, n]
        const int kl = idx / BN, nl = idx % BN;
        const int64_t n = n0 + nl, k = k0 + kl;
        Bs[kl][nl] = (n < N && k < K) ? load_weight<WT>(w, wrow + k, n) : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx + 16 * j;
      if (n < N) st_any(y, y_bf16, y0 + m * ldy + n, acc[i][j]);
    }
  }
}

// 8 consecutive activations of a row from x (16-byte aligned), widened to fp32.
__device__ inline void load_x8(const float* x, float out[8]) {
  const float4* p = reinterpret_cast<const float4*>(x);
  const float4 a = p[0], c = p[1];
  out[0] = a.x;
  out[1] = a.y;
  out[2] = a.z;
  out[3] = a.w;
  out[4] = c.x;
  out[5] = c.y;
  out[6] = c.z;
  out[7] = c.w;
}
__device__ inline void load_x8(const Bf16* x, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(x);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    out[2 * j] = bf16_to_f32(static_cast<uint16_t>(words[j] & 0xffff));
    out[2 * j + 1] = bf16_to_f32(static_cast<uint16_t>(words[j] >> 16));
  }
}

// 8 consecutive weight values of row `row` starting at column k (k % 8 == 0, 8-element aligned), dequantised.
template <DType WT>
__device__ inline void load8(const DevWeight& w, int64_t row, int64_t k, float out[8]) {
  const int64_t idx = row * w.ld + k;
  if constexpr (WT == DType::kF8E4M3) {
    const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(w.data) + idx);
    const float s = w.scale[((w.row0 + row) >> 7) * w.scale_ld + (k >> 7)];
#pragma unroll
    for (int j = 0; j < 4; ++j) out[j] = e4m3_to_f32((raw.x >> (8 * j)) & 0xff) * s;
#pragma unroll
    for (int j = 0; j < 4; ++j) out[4 + j] = e4m3_to_f32((raw.y >> (8 * j)) & 0xff) * s;
  } else if constexpr (WT == DType::kBF16 || WT == DType::kF16) {
    const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w.data) + idx);
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint16_t lo = words[j] & 0xffff, hi = words[j] >> 16;
      out[2 * j] = WT == DType::kBF16 ? bf16_to_f32(lo) : f16_to_f32(lo);
      out[2 * j + 1] = WT == DType::kBF16 ? bf16_to_f32(hi) : f16_to_f32(hi);
    }
  } else {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(w.data) + idx);
    const float4 a = p[0], c = p[1];
    out[0] = a.x;
    out[1] = a.y;
    out[2] = a.z;
    out[3] = a.w;
    out[4] = c.x;
    out[5] = c.y;
    out[6] = c.z;
    out[7] = c.w;
  }
}

template <DType WT, int MT, class TX>
__global__ void __launch_bounds__(256)
    gemm_small_m_kernel(const TX* x, int64_t M, int64_t ldx, DevWeight w, void* y, bool y_bf16, int64_t ldy) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (n >= w.n) return;
  const int lane = threadIdx.x & 31;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  for (int64_t k = lane * 8; k < w.k; k += 256) {
    float wv[8];
    load8<WT>(w, n, k, wv);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < M) {
        float xv[8];
        load_x8(x + m * ldx + k, xv);
        float s = acc[m];
#pragma unroll
        for (int j = 0; j < 8; ++j) s = fmaf(xv[j], wv[j], s);
        acc[m] = s;
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m < M) {
      const float v = warp_sum(acc[m]);
      if (lane == 0) st_any(y, y_bf16, m * ldy + n, v);
    }
  }
}

template <DType WT, int MT, class TX>
cudaError_t launch_small(const TX* x, int64_t m, int64_t ldx, const DevWeight& w, const DevAct& y,
                         cudaStream_t s) {
  gemm_small_m_kernel<WT, MT, TX><<<blocks_for(w.n, 8), 256, 0, s>>>(x, m, ldx, w, y.data, y.bf16, y.ld);
  return launch_status();
}

}  // namespace

cudaError_t gemm_f32(const DevAct& x, int64_t m, const DevWeight& w, bool transposed, int64_t n_out,
                     int64_t k_in, const DevAct& y, const GemmBatch& b, cudaStream_t s) {
  if (m <= 0 || n_out <= 0 || b.batch <= 0) return cudaSuccess;
  if (m > 65535LL * BM || b.batch > 65535) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(n_out, BN), blocks_for(m, BM), static_cast<unsigned>(b.batch));
  MOERT_CUDA_ACT_SWITCH(x.bf16, TX, {
    const TX* xp = act_ptr<const TX>(x);
    MOERT_CUDA_WTYPE_SWITCH(w.type, WT, {
      if (transposed)
        gemm_tiled_kernel<WT, true, TX>
            <<<grid, kThreads, 0, s>>>(xp, m, x.ld, w, n_out, k_in, y.data, y.bf16, y.ld, b);
      else
        gemm_tiled_kernel<WT, false, TX>
            <<<grid, kThreads, 0, s>>>(xp, m, x.ld, w, n_out, k_in, y.data, y.bf16, y.ld, b);
    });
  });
  return launch_status();
}

cudaError_t gemm_small_m(const DevAct& x, int64_t m, const DevWeight& w, const DevAct& y, cudaStream_t s) {
  if (m <= 0 || w.n <= 0) return cudaSuccess;
  const int esize = w.type == DType::kF32 ? 4 : w.type == DType::kF8E4M3 ? 1 : 2;
  // 8 activations (32 bytes of fp32, 16 of bf16) per vector load: rows must start 16-byte aligned.
  const int64_t x_ld_multiple = x.bf16 ? 8 : 4;
  const bool aligned = m <= 16 && w.k % 8 == 0 && w.ld % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(w.data) % (8 * esize) == 0 && x.ld % x_ld_multiple == 0 &&
                       reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && w.n <= 65535LL * 8 * 1024;
  if (!aligned) return cudaErrorNotSupported;
  MOERT_CUDA_ACT_SWITCH(x.bf16, TX, {
    const TX* xp = act_ptr<const TX>(x);
    MOERT_CUDA_WTYPE_SWITCH(w.type, WT, {
      if (m <= 1) return launch_small<WT, 1, TX>(xp, m, x.ld, w, y, s);
      if (m <= 4) return launch_small<WT, 4, TX>(xp, m, x.ld, w, y, s);
      if (m <= 8) return launch_small<WT, 8, TX>(xp, m, x.ld, w, y, s);
      return launch_small<WT, 16, TX>(xp, m, x.ld, w, y, s);
    });
  });
  return cudaSuccess;
}

}  // namespace moert::cuda
