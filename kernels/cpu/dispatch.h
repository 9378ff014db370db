// Internal: pick the implementation for the instruction set in use.
#pragma once
#include "cpu_features.h"
#include "simd.h"

#ifdef MOERT_KERNELS_X86
#define MOERT_DISPATCH(fn, ...)               \
  do {                                        \
    switch (::moert::kernels::cpu_isa()) {    \
      case ::moert::kernels::CpuIsa::kAvx512: \
        return simd_avx512::fn(__VA_ARGS__);  \
      case ::moert::kernels::CpuIsa::kAvx2:   \
        return simd_avx2::fn(__VA_ARGS__);    \
      default:                                \
        break;                                \
    }                                         \
  } while (0)
#else
#define MOERT_DISPATCH(fn, ...) \
  do {                          \
  } while (0)
#endif
