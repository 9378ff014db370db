// moert_q4's quantiser: fp32 weight rows to 4-bit codes q in 0..15 with an fp16 scale d and offset m per
// group of columns (w ~ d * q + m), packed as kernels/cpu/weight_ref.h describes. Each group's (d, m) is
// searched for the least squared error, as llama.cpp's k-quants do: candidate code assignments from a
// sweep of scales around (max - min) / 15, each refitted by least squares, the best then alternately
// re-assigned and refitted; the result is rounded to fp16 and the codes re-assigned for the rounded pair.
#pragma once
#include <cstdint>
#include <vector>

namespace moert {

enum class Q4Search : uint8_t {
  kNearest,  // plain round-to-nearest over [min, max]: d = (max - min) / 15, m = min (for comparison)
  kRmse,     // the least-squares search above (what moert quantize writes)
};

struct Q4Weight {
  int64_t n = 0, k = 0, group = 0;
  std::vector<uint8_t> codes;        // [n, k / 2]
  std::vector<uint16_t> scale, min;  // fp16 bits [n, k / group]
};

// Quantises w [n, k] (row-major). k must be a multiple of group, group a multiple of 32 (else
// Error(kInvalidArgument)). `threads` splits the rows (0 = all cores).
Q4Weight quantize_q4(const float* w, int64_t n, int64_t k, int64_t group, Q4Search search = Q4Search::kRmse,
                     int threads = 0);

// The value the stored code of (row, col) stands for: d * q + m in fp32.
float q4_value(const Q4Weight& q, int64_t row, int64_t col);

}  // namespace moert
