// Element-wise ops: silu(gate) * up, y += x, and the MoE combine.
#include "common.cuh"

namespace moert::cuda {
namespace {

__global__ void silu_mul_kernel(int64_t rows, const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t cols, float* out,
                                int64_t ldo) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[r * ldg + i];
    out[r * ldo + i] = g / (1.0f + expf(-g)) * up[r * ldu + i];
  }
}

__global__ void add_kernel(int64_t rows, const float* x, int64_t ldx, int64_t cols, float* y, int64_t ldy) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[r * ldy + i] += x[r * ldx + i];
}

__global__ void moe_combine_kernel(int64_t rows, const float* y, int64_t ldy, const int32_t* slot_row, const float* w, int64_t ldw,
                                   int64_t top_k, int64_t cols, float* out, int64_t ldo) {
  for (int64_t t = blockIdx.y; t < rows; t += gridDim.y)
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float acc = 0.0f;
    for (int64_t s = 0; s < top_k; ++s) {
      const int32_t r = slot_row[t * top_k + s];
      if (r >= 0) acc += w[t * ldw + s] * y[r * ldy + i];
    }
    out[t * ldo + i] = acc;
  }
}

dim3 grid2(int64_t cols, int64_t rows) {
  return dim3(static_cast<unsigned>(std::min<int64_t>(blocks_for(cols, 256), 64)), ydim(rows));
}

}  // namespace

cudaError_t silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows, int64_t cols,
                     float* out, int64_t ldo, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  silu_mul_kernel<<<grid2(cols, rows), 256, 0, s>>>(rows, gate, ldg, up, ldu, cols, out, ldo);
  return launch_status();
}

cudaError_t add_inplace(const float* x, int64_t ldx, int64_t rows, int64_t cols, float* y, int64_t ldy, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  add_kernel<<<grid2(cols, rows), 256, 0, s>>>(rows, x, ldx, cols, y, ldy);
  return launch_status();
}

cudaError_t moe_combine(const float* y, int64_t ldy, const int32_t* slot_row, const float* w, int64_t ldw,
                        int64_t tokens, int64_t top_k, int64_t cols, float* out, int64_t ldo, cudaStream_t s) {
  if (tokens <= 0 || cols <= 0) return cudaSuccess;
  moe_combine_kernel<<<grid2(cols, tokens), 256, 0, s>>>(tokens, y, ldy, slot_row, w, ldw, top_k, cols, out, ldo);
  return launch_status();
}

}  // namespace moert::cuda
