// Element-wise ops: silu(gate) * up, y += x, and the MoE combine.
#include "common.cuh"

namespace moert::cuda {
namespace {

__global__ void silu_mul_kernel(int64_t rows, const float* gate, int64_t ldg, const float* up, int64_t ldu,
                                int64_t cols, float* out, int64_t ldo) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const float g = gate[r * ldg + i];
      out[r * ldo + i] = g / (1.0f + expf(-g)) * up[r * ldu + i];
    }
}

__global__ void add_kernel(int64_t rows, const float* x, int64_t ldx, int64_t cols, float* y, int64_t ldy) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
      y[r * ldy + i] += x[r * ldx + i];
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

cudaError_t add_inplace(const float* x, int64_t ldx, int64_t rows, int64_t cols, float* y, int64_t ldy,
                        cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  add_kernel<<<grid2(cols, rows), 256, 0, s>>>(rows, x, ldx, cols, y, ldy);
  return launch_status();
}

}  // namespace moert::cuda
