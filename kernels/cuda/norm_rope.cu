// RMSNorm (fp32 math, one block per row) and RoPE on interleaved pairs with the YaRN attention factor, over
// fp32 or bf16 elements.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kNormThreads = 256;

// x and y may be one buffer (then TX == TY): every thread reads its elements of the row before writing them,
// and the sum is complete (the barriers) before any element is written.
template <class TX, class TY>
__global__ void rmsnorm_kernel(const TX* x, int64_t rows, int64_t ldx, int64_t d, const void* w, DType wtype,
                               float eps, TY* y, int64_t ldy) {
  __shared__ float partial[kNormThreads / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const TX* xr = x + r * ldx;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
      const float v = ld_act(xr, i);
      ss += v * v;
    }
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < kNormThreads / 32; ++i) total += partial[i];
    __syncthreads();  // partial is reused by the next row
    const float inv = 1.0f / sqrtf(total / static_cast<float>(d) + eps);
    TY* yr = y + r * ldy;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
      st_act(yr, i, load_any(w, wtype, i) * (ld_act(xr, i) * inv));
  }
}

template <class T>
__global__ void rope_kernel(T* x, int64_t rows, int64_t ldx, int64_t heads, int64_t head_stride, int64_t half,
                            const int32_t* positions, const float* inv_freq, float attention_factor) {
  const int64_t total = rows * half * heads;
  for (int64_t idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t h = idx % heads, i = (idx / heads) % half, r = idx / (heads * half);
    const float angle = static_cast<float>(positions[r]) * inv_freq[i];
    const float c = cosf(angle) * attention_factor, s = sinf(angle) * attention_factor;
    T* v = x + r * ldx + h * head_stride + 2 * i;
    const float a = ld_act(v, 0), b = ld_act(v, 1);
    st_act(v, 0, a * c - b * s);
    st_act(v, 1, b * c + a * s);
  }
}

}  // namespace

cudaError_t rmsnorm(const DevAct& x, int64_t rows, int64_t d, const void* w, DType wtype, float eps,
                    const DevAct& y, cudaStream_t s) {
  if (rows <= 0 || d <= 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 65535));
  MOERT_CUDA_ACT_SWITCH(x.bf16, TX, {
    MOERT_CUDA_ACT_SWITCH(y.bf16, TY, {
      rmsnorm_kernel<TX, TY><<<grid, kNormThreads, 0, s>>>(act_ptr<const TX>(x), rows, x.ld, d, w, wtype, eps,
                                                           act_ptr<TY>(y), y.ld);
    });
  });
  return launch_status();
}

cudaError_t rope_interleaved(const DevAct& x, int64_t rows, int64_t heads, int64_t head_stride, int64_t dim,
                             const int32_t* positions, const float* inv_freq, float attention_factor,
                             cudaStream_t s) {
  const int64_t total = rows * (dim / 2) * heads;
  if (total <= 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(blocks_for(total, 256), 4096));
  MOERT_CUDA_ACT_SWITCH(x.bf16, T, {
    rope_kernel<T><<<grid, 256, 0, s>>>(act_ptr<T>(x), rows, x.ld, heads, head_stride, dim / 2, positions,
                                        inv_freq, attention_factor);
  });
  return launch_status();
}

}  // namespace moert::cuda
