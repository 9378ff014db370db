// The scan's element checks on every dtype and position (block edges included), and the run-time check
// on logits: what the fault catalogue's end-to-end loads rely on.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/finite_check.h"
#include "weights/weight_scan.h"

namespace {

using moert::DType;
using moert::first_bad_element;

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v, size_t offset = 0) {
  std::vector<uint8_t> b(offset + v.size() * sizeof(T));  // offset: unaligned data, as a mapped shard may be
  std::memcpy(b.data() + offset, v.data(), v.size() * sizeof(T));
  return b;
}

TEST(WeightScan, FindsTheFirstBadElementOfEachDtype) {
  for (int64_t n : {1, 7, 4095, 4096, 4097, 10000}) {
    for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
      // BF16 and F16: all exponent bits set is Inf or NaN; the largest finite values pass.
      std::vector<uint16_t> bf(n, 0x7F7F), h(n, 0x7BFF);
      bf[at] = 0xFF80;  // -Inf
      h[at] = 0x7E00;   // NaN
      auto b1 = bytes_of(bf, 1), b2 = bytes_of(h, 1);
      EXPECT_EQ(first_bad_element(b1.data() + 1, n, DType::kBF16, false), at) << n;
      EXPECT_EQ(first_bad_element(b2.data() + 1, n, DType::kF16, false), at) << n;
      std::vector<float> f(n, -std::numeric_limits<float>::max());
      f[at] = std::nanf("");
      auto b3 = bytes_of(f, 3);
      EXPECT_EQ(first_bad_element(b3.data() + 3, n, DType::kF32, false), at);
      // e4m3: 0x7E (448) and 0xFE (-448) are finite, 0x7F and 0xFF are NaN.
      std::vector<uint8_t> q(n, 0x7E);
      q[at] = 0xFF;
      EXPECT_EQ(first_bad_element(q.data(), n, DType::kF8E4M3, false), at);
      q[at] = 0xFE;
      EXPECT_EQ(first_bad_element(q.data(), n, DType::kF8E4M3, false), -1);
    }
  }
}

TEST(WeightScan, ScalesMustBeFiniteAndPositive) {
  std::vector<float> s(300, 1e-30f);
  auto b = bytes_of(s);
  EXPECT_EQ(first_bad_element(b.data(), 300, DType::kF32, true), -1);
  for (float bad : {0.0f, -0.0f, -1.0f, INFINITY, NAN}) {
    s[123] = bad;
    b = bytes_of(s);
    EXPECT_EQ(first_bad_element(b.data(), 300, DType::kF32, true), 123) << bad;
    // As an ordinary F32 tensor, zero and negative values are fine.
    EXPECT_EQ(first_bad_element(b.data(), 300, DType::kF32, false), std::isfinite(bad) ? -1 : 123) << bad;
  }
}

TEST(WeightScan, IntegerTensorsAreNotScanned) {
  std::vector<uint8_t> b(64, 0xFF);
  EXPECT_EQ(first_bad_element(b.data(), 16, DType::kI32, false), -1);
  EXPECT_EQ(first_bad_element(b.data(), 64, DType::kU8, false), -1);
}

TEST(FiniteCheck, FirstNonFiniteLogit) {
  for (int64_t n : {1, 1023, 1024, 1025, 129280}) {
    std::vector<float> x(n, 3.0f);
    EXPECT_EQ(moert::first_non_finite(x.data(), n), -1);
    x[n - 1] = -INFINITY;
    EXPECT_EQ(moert::first_non_finite(x.data(), n), n - 1);
    x[n / 3] = NAN;
    EXPECT_EQ(moert::first_non_finite(x.data(), n), n / 3);
  }
}

}  // namespace
