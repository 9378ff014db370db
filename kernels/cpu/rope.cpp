#include "rope.h"

#include <cmath>

namespace moert::kernels {

void rope_interleaved(float* x, int64_t rows, int64_t ldx, int64_t heads, int64_t head_stride, int64_t dim,
                      const int32_t* positions, const float* inv_freq, float attention_factor) {
  const int64_t half = dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];  // fp32 product, as the reference computes it
      const float c = std::cos(angle) * attention_factor, s = std::sin(angle) * attention_factor;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + r * ldx + h * head_stride + 2 * i;
        const float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = b * c + a * s;
      }
    }
  }
}

}  // namespace moert::kernels
