// Rotary position embedding on interleaved pairs (x[2i], x[2i+1]) rotated by pos * inv_freq[i], with cos
// and sin multiplied by `attention_factor` (YaRN), as DeepSeek's released weights expect.
#pragma once
#include <cstdint>

namespace moert::kernels {

// x: `rows` rows of `heads` vectors of `dim` values each; the vector of (row r, head h) starts at
// x + r * ldx + h * head_stride. positions[r] is row r's absolute position. In place.
void rope_interleaved(float* x, int64_t rows, int64_t ldx, int64_t heads, int64_t head_stride, int64_t dim,
                      const int32_t* positions, const float* inv_freq, float attention_factor);

}  // namespace moert::kernels
