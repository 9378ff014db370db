// DeepSeek's activation quantisation: per row, per 128-column tile, scale = amax / 448, q = e4m3(x / scale).
// One warp per tile (4 values per lane), over fp32 or bf16 activations (widened to fp32 first).
#include "common.cuh"

namespace moert::cuda {
namespace {

// Quantises one tile of n (<= 128) values at `src`; lane l handles values l, l+32, l+64, l+96.
template <class T>
__device__ inline float tile_scale(const T* src, int64_t n, float v[4]) {
  const int lane = threadIdx.x & 31;
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t i = lane + 32 * j;
    v[j] = i < n ? ld_act(src, i) : 0.0f;
    amax = fmaxf(amax, fabsf(v[j]));
  }
  return warp_max(amax) / 448.0f;
}

template <class T>
__global__ void act_quant_kernel(const T* x, int64_t rows, int64_t ldx, int64_t cols, uint8_t* q, int64_t ldq,
                                 float* scales, int64_t scale_ld) {
  const int64_t tiles = (cols + 127) / 128;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (warp >= rows * tiles) return;
  const int64_t r = warp / tiles, t = warp % tiles, c0 = t * 128, n = std::min<int64_t>(128, cols - c0);
  float v[4];
  const float s = tile_scale(x + r * ldx + c0, n, v);
  const int lane = threadIdx.x & 31;
  if (lane == 0) scales[t * scale_ld + r] = s;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < n) q[r * ldq + c0 + i] = s == 0.0f ? 0 : f32_to_e4m3(v[j] / s);
  }
}

template <class T>
__global__ void act_quant_dequant_kernel(const T* x, int64_t rows, int64_t ldx, int64_t segs,
                                         int64_t seg_stride, int64_t width, float* out, int64_t ldo) {
  const int64_t tiles = (width + 127) / 128;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (warp >= rows * segs * tiles) return;
  const int64_t t = warp % tiles, g = (warp / tiles) % segs, r = warp / (tiles * segs);
  const int64_t c0 = t * 128, n = std::min<int64_t>(128, width - c0);
  float v[4];
  const float s = tile_scale(x + r * ldx + g * seg_stride + c0, n, v);
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < n) out[r * ldo + g * width + c0 + i] = s == 0.0f ? 0.0f : e4m3_to_f32(f32_to_e4m3(v[j] / s)) * s;
  }
}

}  // namespace

cudaError_t act_quant(const DevAct& x, int64_t rows, int64_t cols, uint8_t* q, int64_t ldq, float* scales,
                      int64_t scale_ld, cudaStream_t s) {
  const int64_t warps = rows * ((cols + 127) / 128);
  if (warps <= 0) return cudaSuccess;
  MOERT_CUDA_ACT_SWITCH(x.bf16, T, {
    act_quant_kernel<T><<<blocks_for(warps * 32, 256), 256, 0, s>>>(act_ptr<const T>(x), rows, x.ld, cols, q,
                                                                    ldq, scales, scale_ld);
  });
  return launch_status();
}

cudaError_t act_quant_dequant(const DevAct& x, int64_t rows, int64_t segs, int64_t seg_stride, int64_t width,
                              float* out, int64_t ldo, cudaStream_t s) {
  const int64_t warps = rows * segs * ((width + 127) / 128);
  if (warps <= 0) return cudaSuccess;
  MOERT_CUDA_ACT_SWITCH(x.bf16, T, {
    act_quant_dequant_kernel<T><<<blocks_for(warps * 32, 256), 256, 0, s>>>(
        act_ptr<const T>(x), rows, x.ld, segs, seg_stride, width, out, ldo);
  });
  return launch_status();
}

}  // namespace moert::cuda
