// The grouped MoE primitives: a counting sort of the router's (token, slot) pairs by expert, a tiled
// fp32-accumulating GEMM over every expert's rows at once (each expert's weight from a device table, its
// rows from the device offsets, so the host never learns the counts), and the ordered weighted combine. The
// activations (the grouped rows, the outputs) are fp32 or bf16; the sums fp32.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kGroupThreads = 1024;

// One block. Ids outside [0, experts) are treated as absent (slot_row -1): the router never makes them.
// offsets[e] from the counts; then one thread per expert assigns its pairs' rows in token order
// (stable, as the CPU's sort); pairs of absent experts get -1; token[] past the real rows is 0.
__global__ void __launch_bounds__(kGroupThreads)
    group_kernel(const int32_t* ids, int64_t ldi, int64_t tokens, int64_t top_k, const int32_t* present,
                 int64_t experts, int32_t* token, int64_t bound, int32_t* offsets, int32_t* slot_row) {
  extern __shared__ int32_t cnt[];  // experts + 1
  const int64_t pairs = tokens * top_k;
  for (int64_t e = threadIdx.x; e <= experts; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int32_t e = ids[(p / top_k) * ldi + p % top_k];
    if (e >= 0 && e < experts && present[e])
      atomicAdd(&cnt[e + 1], 1);
    else
      slot_row[p] = -1;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int64_t e = 0; e < experts; ++e) cnt[e + 1] += cnt[e];
  __syncthreads();
  for (int64_t e = threadIdx.x; e <= experts; e += blockDim.x) offsets[e] = cnt[e];
  for (int64_t r = cnt[experts] + threadIdx.x; r < bound; r += blockDim.x) token[r] = 0;
  for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) {
    if (!present[e]) continue;
    int32_t r = cnt[e];
    for (int64_t p = 0; p < pairs; ++p)
      if (ids[(p / top_k) * ldi + p % top_k] == e) {
        token[r] = static_cast<int32_t>(p / top_k);
        slot_row[p] = r++;
      }
  }
}

constexpr int BM = 64, BN = 64, BK = 16, kThreads = 256;

// y[rows of expert e] = x[same rows] @ W_e^T, blockIdx.z = e.
template <DType WT, class TX>
__global__ void __launch_bounds__(kThreads)
    grouped_gemm_kernel(const TX* x, int64_t ldx, const DevWeight* ws, const int32_t* offsets, void* y,
                        bool y_bf16, int64_t ldy) {
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const DevWeight w = ws[blockIdx.z];
  if (!w.data) return;
  const int64_t r0 = offsets[blockIdx.z], rows = offsets[blockIdx.z + 1] - r0;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t N = w.n, K = w.k;
  if (m0 >= rows || n0 >= N) return;
  x += r0 * ldx;
  const int64_t y0 = r0 * ldy;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int idx = tid + kThreads * r;
      const int ml = idx / BK, kl = idx % BK;
      const int64_t m = m0 + ml, k = k0 + kl;
      As[kl][ml] = (m < rows && k < K) ? ld_act(x, m * ldx + k) : 0.0f;
      const int64_t n = n0 + ml;
      Bs[kl][ml] = (n < N && k < K) ? load_weight<WT>(w, n, k) : 0.0f;
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
    if (m >= rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx + 16 * j;
      if (n < N) st_any(y, y_bf16, y0 + m * ldy + n, acc[i][j]);
    }
  }
}

constexpr int kMaxCombineSlots = 32;

template <class TY>
__global__ void combine_kernel(int64_t tokens, const TY* y, int64_t ldy, const int32_t* slot_row,
                               int64_t ldsr, const float* w, int64_t ldw, const int32_t* order, int64_t ldo_k,
                               int64_t k, int64_t cols, void* out, bool out_bf16, int64_t ldo) {
  for (int64_t t = blockIdx.y; t < tokens; t += gridDim.y) {
    // The token's slots in ascending (key, slot), as the CPU adds them.
    int32_t slot[kMaxCombineSlots];
    for (int64_t s = 0; s < k; ++s) {
      int64_t j = s;
      const int32_t key = order[t * ldo_k + s];
      while (j > 0 && order[t * ldo_k + slot[j - 1]] > key) {
        slot[j] = slot[j - 1];
        --j;
      }
      slot[j] = static_cast<int32_t>(s);
    }
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      float acc = 0.0f;
      for (int64_t s = 0; s < k; ++s) {
        const int32_t r = slot_row[t * ldsr + slot[s]];
        if (r >= 0) acc = fmaf(w[t * ldw + slot[s]], ld_act(y, r * ldy + i), acc);
      }
      st_any(out, out_bf16, t * ldo + i, acc);
    }
  }
}

}  // namespace

cudaError_t moe_group(const int32_t* ids, int64_t ldi, int64_t tokens, int64_t top_k, const int32_t* present,
                      int64_t experts, int32_t* token, int64_t bound, int32_t* offsets, int32_t* slot_row,
                      cudaStream_t s) {
  if (experts <= 0 || experts > 8192) return cudaErrorInvalidValue;
  const size_t shm = static_cast<size_t>(experts + 1) * sizeof(int32_t);
  group_kernel<<<1, kGroupThreads, shm, s>>>(ids, ldi, tokens, top_k, present, experts, token, bound, offsets,
                                             slot_row);
  return launch_status();
}

template <DType WT>
void launch_grouped(const DevAct& x, const DevWeight* weights, const int32_t* offsets, const DevAct& y,
                    const dim3& grid, cudaStream_t s) {
  MOERT_CUDA_ACT_SWITCH(x.bf16, TX, {
    grouped_gemm_kernel<WT, TX>
        <<<grid, kThreads, 0, s>>>(act_ptr<const TX>(x), x.ld, weights, offsets, y.data, y.bf16, y.ld);
  });
}

cudaError_t grouped_gemm(const DevAct& x, const DevWeight* weights, DType wtype, const int32_t* offsets,
                         int64_t experts, int64_t max_rows, int64_t max_n, const DevAct& y, cudaStream_t s) {
  if (experts <= 0 || max_rows <= 0 || max_n <= 0) return cudaSuccess;
  if (experts > 65535) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(max_n, BN), blocks_for(max_rows, BM), static_cast<unsigned>(experts));
  switch (wtype) {
    case DType::kF8E4M3:
      launch_grouped<DType::kF8E4M3>(x, weights, offsets, y, grid, s);
      break;
    case DType::kBF16:
      launch_grouped<DType::kBF16>(x, weights, offsets, y, grid, s);
      break;
    case DType::kF16:
      launch_grouped<DType::kF16>(x, weights, offsets, y, grid, s);
      break;
    default:
      launch_grouped<DType::kF32>(x, weights, offsets, y, grid, s);
      break;
  }
  return launch_status();
}

cudaError_t moe_combine_ordered(const DevAct& y, const int32_t* slot_row, int64_t ldsr, const float* w,
                                int64_t ldw, const int32_t* order, int64_t ldo_k, int64_t tokens, int64_t k,
                                int64_t cols, const DevAct& out, cudaStream_t s) {
  if (tokens <= 0 || cols <= 0) return cudaSuccess;
  if (k > kMaxCombineSlots) return cudaErrorInvalidValue;
  const dim3 grid(std::min<unsigned>(blocks_for(cols, 256), 64), ydim(tokens));
  MOERT_CUDA_ACT_SWITCH(y.bf16, TY, {
    combine_kernel<TY><<<grid, 256, 0, s>>>(tokens, act_ptr<const TY>(y), y.ld, slot_row, ldsr, w, ldw, order,
                                            ldo_k, k, cols, out.data, out.bf16, out.ld);
  });
  return launch_status();
}

}  // namespace moert::cuda
