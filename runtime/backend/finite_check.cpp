#include "backend/finite_check.h"

#include <algorithm>
#include <cstring>

namespace moert {

int64_t first_non_finite(const float* x, int64_t n) {
  // Branch-free over blocks (vectorised: compares on the exponent bits, no -ffast-math assumptions).
  constexpr int64_t kBlock = 1024;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    unsigned acc = 0;
    for (int64_t i = 0; i < m; ++i) {
      uint32_t v;
      std::memcpy(&v, x + b + i, 4);
      acc |= (v & 0x7F800000u) == 0x7F800000u;
    }
    if (!acc) continue;
    for (int64_t i = 0; i < m; ++i) {
      uint32_t v;
      std::memcpy(&v, x + b + i, 4);
      if ((v & 0x7F800000u) == 0x7F800000u) return b + i;
    }
  }
  return -1;
}

}  // namespace moert
