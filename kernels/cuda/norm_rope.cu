// RMSNorm (fp32, one block per row) and RoPE on interleaved pairs with the YaRN attention factor.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kNormThreads = 256;

__global__ void rmsnorm_kernel(const float* x, int64_t rows, int64_t ldx, int64_t d, const void* w,
                               DType wtype, float eps, float* y, int64_t ldy) {
  __shared__ float partial[kNormThreads / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * ldx;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < kNormThreads / 32; ++i) total += partial[i];
    __syncthreads();  // partial is reused by the next row
    const float inv = 1.0f / sqrtf(total / static_cast<float>(d) + eps);
    float* yr = y + r * ldy;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = load_any(w, wtype, i) * (xr[i] * inv);
  }
}

__global__ void rope_kernel(float* x, int64_t rows, int64_t ldx, int64_t heads, int64_t head_stride,
                            int64_t half, const int32_t* positions, const float* inv_freq,
                            float attention_factor) {
  const int64_t total = rows * half * heads;
  for (int64_t idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t h = idx % heads, i = (idx / heads) % half, r = idx / (heads * half);
    const float angle = static_cast<float>(positions[r]) * inv_freq[i];
    const float c = cosf(angle) * attention_factor, s = sinf(angle) * attention_factor;
    float* v = x + r * ldx + h * head_stride + 2 * i;
    const float a = v[0], b = v[1];
    v[0] = a * c - b * s;
    v[1] = b * c + a * s;
  }
}

}  // namespace

cudaError_t rmsnorm(const float* x, int64_t rows, int64_t ldx, int64_t d, const void* w, DType wtype,
                    float eps, float* y, int64_t ldy, cudaStream_t s) {
  if (rows <= 0 || d <= 0) return cudaSuccess;
  rmsnorm_kernel<<<static_cast<unsigned>(std::min<int64_t>(rows, 65535)), kNormThreads, 0, s>>>(
      x, rows, ldx, d, w, wtype, eps, y, ldy);
  return launch_status();
}

cudaError_t rope_interleaved(float* x, int64_t rows, int64_t ldx, int64_t heads, int64_t head_stride,
                             int64_t dim, const int32_t* positions, const float* inv_freq,
                             float attention_factor, cudaStream_t s) {
  const int64_t total = rows * (dim / 2) * heads;
  if (total <= 0) return cudaSuccess;
  rope_kernel<<<static_cast<unsigned>(std::min<int64_t>(blocks_for(total, 256), 4096)), 256, 0, s>>>(
      x, rows, ldx, heads, head_stride, dim / 2, positions, inv_freq, attention_factor);
  return launch_status();
}

}  // namespace moert::cuda
