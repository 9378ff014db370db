// RMSNorm: y = w * x / sqrt(mean(x^2) + eps), per row, in fp32.
#pragma once
#include <cstdint>

#include "weight_ref.h"

namespace moert::kernels {

// x and y may alias. `w` is a [1, d] weight of any stored type.
void rmsnorm(const float* x, int64_t rows, int64_t ldx, int64_t d, const WeightRef& w, float eps, float* y,
             int64_t ldy);

}  // namespace moert::kernels
