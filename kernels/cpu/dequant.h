// Dequantise part of one weight row to fp32 (the scale folded in for FP8), bit-identical to
// `q.float() * scale_inv` in PyTorch.
#pragma once
#include <cstdint>

#include "weight_ref.h"

namespace moert::kernels {

void dequant_row(const WeightRef& w, int64_t row, int64_t col0, int64_t count, float* out);

}  // namespace moert::kernels
