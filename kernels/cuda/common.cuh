// Internal helpers of the CUDA kernels: launch checks and scalar conversions that match
// kernels/cpu/numeric_types.h bit for bit (e4m3 round-to-nearest-even with saturation, bf16, fp16).
#pragma once
#include <algorithm>
#include <cstdint>

#include <cuda_runtime.h>

#include "cuda_kernels.h"

namespace moert::cuda {

inline cudaError_t launch_status() {
  return cudaGetLastError();
}
inline unsigned ydim(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 ? rows : 65535);
}
inline unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

__device__ inline float e4m3_to_f32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  const uint32_t exp = (b >> 3) & 0xf, man = b & 0x7u;
  if (exp == 0xf && man == 0x7) return __uint_as_float(sign | 0x7fc00000u);
  if (exp == 0) {
    const float v = static_cast<float>(man) * 0.001953125f;
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((exp + 120) << 23) | (man << 20));
}

__device__ inline uint8_t f32_to_e4m3(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const float a = fabsf(f);
  if (isnan(f)) return static_cast<uint8_t>(sign | 0x7f);
  if (a >= 464.0f) return static_cast<uint8_t>(sign | 0x7e);
  if (a < 0.015625f) {
    const float q = rintf(a * 512.0f);  // round half to even, as nearbyint in the default mode
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));
  }
  const uint32_t ua = __float_as_uint(a);
  const uint32_t rounded = ua + 0x7ffffu + ((ua >> 20) & 1u);
  const uint32_t exp = (rounded >> 23) - 120, man = (rounded >> 20) & 0x7u;
  if (exp > 15 || (exp == 15 && man == 7)) return static_cast<uint8_t>(sign | 0x7e);
  return static_cast<uint8_t>(sign | (exp << 3) | man);
}

__device__ inline float bf16_to_f32(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
// Round to nearest even (NaN stays NaN), as kernels/cpu/numeric_types.h's f32_to_bf16.
__device__ inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// Element i of a latent cache row (fp32 or bf16 storage).
__device__ inline float cache_load(const void* row, bool bf16, int64_t i) {
  return bf16 ? bf16_to_f32(static_cast<const uint16_t*>(row)[i]) : static_cast<const float*>(row)[i];
}

// Activation elements (DevAct): the kernels are templated on the stored type T, float or Bf16, and do their
// math in fp32: ld_act widens, st_act rounds to nearest even (as kernels/cpu's f32_to_bf16). For float both
// are plain loads and stores, so the fp32 path computes exactly what it did before bf16 existed.
struct Bf16 {
  uint16_t bits;
};
__device__ inline float ld_act(const float* p, int64_t i) {
  return p[i];
}
__device__ inline float ld_act(const Bf16* p, int64_t i) {
  return bf16_to_f32(p[i].bits);
}
__device__ inline void st_act(float* p, int64_t i, float v) {
  p[i] = v;
}
__device__ inline void st_act(Bf16* p, int64_t i, float v) {
  p[i].bits = f32_to_bf16(v);
}
// The same for an operand whose type is known only at run time (a uniform branch: outputs written once).
__device__ inline void st_any(void* p, bool bf16, int64_t i, float v) {
  if (bf16)
    static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
  else
    static_cast<float*>(p)[i] = v;
}
template <class T>
__host__ __device__ inline T* act_ptr(const DevAct& a) {
  return static_cast<T*>(a.data);
}

__device__ inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  if (exp == 0) {
    const float v = ldexpf(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (man << 13));
  return __uint_as_float(sign | ((exp + 112) << 23) | (man << 13));
}

// Element (row, col) of a weight as fp32 (without the FP8 block scale).
template <DType WT>
__device__ inline float load_raw(const void* w, int64_t idx) {
  if constexpr (WT == DType::kF32) return static_cast<const float*>(w)[idx];
  if constexpr (WT == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(w)[idx]);
  if constexpr (WT == DType::kF16) return f16_to_f32(static_cast<const uint16_t*>(w)[idx]);
  if constexpr (WT == DType::kF8E4M3) return e4m3_to_f32(static_cast<const uint8_t*>(w)[idx]);
  return 0.0f;
}

// Dequantised weight element; `row` counts from the view's first row (row0 in the scale grid).
template <DType WT>
__device__ inline float load_weight(const DevWeight& w, int64_t row, int64_t col) {
  float v = load_raw<WT>(w.data, row * w.ld + col);
  if constexpr (WT == DType::kF8E4M3) v *= w.scale[((w.row0 + row) >> 7) * w.scale_ld + (col >> 7)];
  return v;
}

__device__ inline float load_any(const void* w, DType type, int64_t idx) {
  switch (type) {
    case DType::kBF16:
      return load_raw<DType::kBF16>(w, idx);
    case DType::kF16:
      return load_raw<DType::kF16>(w, idx);
    case DType::kF8E4M3:
      return load_raw<DType::kF8E4M3>(w, idx);
    default:
      return load_raw<DType::kF32>(w, idx);
  }
}

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Dispatches a templated launch on an activation's element type (T = float or Bf16).
#define MOERT_CUDA_ACT_SWITCH(is_bf16, T, ...) \
  do {                                         \
    if (is_bf16) {                             \
      using T = Bf16;                          \
      __VA_ARGS__;                             \
    } else {                                   \
      using T = float;                         \
      __VA_ARGS__;                             \
    }                                          \
  } while (0)

// Dispatches a templated launch on the weight type.
#define MOERT_CUDA_WTYPE_SWITCH(type, WT, ...) \
  switch (type) {                              \
    case DType::kF32: {                        \
      constexpr DType WT = DType::kF32;        \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    case DType::kBF16: {                       \
      constexpr DType WT = DType::kBF16;       \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    case DType::kF16: {                        \
      constexpr DType WT = DType::kF16;        \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    case DType::kF8E4M3: {                     \
      constexpr DType WT = DType::kF8E4M3;     \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    default:                                   \
      return cudaErrorInvalidValue;            \
  }

}  // namespace moert::cuda
