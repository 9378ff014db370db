// Element-wise ops: silu(gate) * up and y += x, in fp32 over fp32 or bf16 elements.
#include "common.cuh"

namespace moert::cuda {
namespace {

template <class T>
__global__ void silu_mul_kernel(int64_t rows, const T* gate, int64_t ldg, const T* up, int64_t ldu,
                                int64_t cols, T* out, int64_t ldo) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const float g = ld_act(gate, r * ldg + i);
      st_act(out, r * ldo + i, g / (1.0f + expf(-g)) * ld_act(up, r * ldu + i));
    }
}

template <class TX, class TY>
__global__ void add_kernel(int64_t rows, const TX* x, int64_t ldx, int64_t cols, TY* y, int64_t ldy) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
      st_act(y, r * ldy + i, ld_act(y, r * ldy + i) + ld_act(x, r * ldx + i));
}

dim3 grid2(int64_t cols, int64_t rows) {
  return dim3(static_cast<unsigned>(std::min<int64_t>(blocks_for(cols, 256), 64)), ydim(rows));
}

}  // namespace

cudaError_t silu_mul(const DevAct& gate, const DevAct& up, int64_t rows, int64_t cols, const DevAct& out,
                     cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  if (up.bf16 != gate.bf16 || out.bf16 != gate.bf16) return cudaErrorInvalidValue;
  MOERT_CUDA_ACT_SWITCH(gate.bf16, T, {
    silu_mul_kernel<T><<<grid2(cols, rows), 256, 0, s>>>(
        rows, act_ptr<const T>(gate), gate.ld, act_ptr<const T>(up), up.ld, cols, act_ptr<T>(out), out.ld);
  });
  return launch_status();
}

cudaError_t add_inplace(const DevAct& x, int64_t rows, int64_t cols, const DevAct& y, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  MOERT_CUDA_ACT_SWITCH(x.bf16, TX, {
    MOERT_CUDA_ACT_SWITCH(y.bf16, TY, {
      add_kernel<TX, TY>
          <<<grid2(cols, rows), 256, 0, s>>>(rows, act_ptr<const TX>(x), x.ld, cols, act_ptr<TY>(y), y.ld);
    });
  });
  return launch_status();
}

}  // namespace moert::cuda
