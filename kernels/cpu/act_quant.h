// DeepSeek's activation quantisation for FP8 GEMMs: per row, per 128-column tile, scale = amax / 448 and
// q = e4m3(x / scale). The CPU backend keeps fp32 activations, so it applies the round trip
// x' = q * scale in place, which gives the same products as an FP8 GEMM with FP32 accumulation.
#pragma once
#include <cstdint>

namespace moert::kernels {

// Quantise then dequantise rows of x in place.
void act_quant_dequant(float* x, int64_t rows, int64_t ldx, int64_t cols);
// Quantise rows: q (row stride ldq bytes) and scales [rows, ceil(cols / 128)].
void act_quant(const float* x, int64_t rows, int64_t ldx, int64_t cols, uint8_t* q, int64_t ldq,
               float* scales);

}  // namespace moert::kernels
