// Scalar conversions: fp8 e4m3 for all 256 codes, float -> e4m3 rounding (ties to even, saturation),
// bf16 and fp16.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "cpu/numeric_types.h"
#include "kernel_test_util.h"

namespace moert::kernels::test {
namespace {

bool is_nan_code(int b) {
  return (b & 0x7f) == 0x7f;
}

TEST(Fp8, DecodeAll256Codes) {
  for (int b = 0; b < 256; ++b) {
    const float f = e4m3_to_float(static_cast<uint8_t>(b));
    if (is_nan_code(b)) {
      EXPECT_TRUE(std::isnan(f)) << b;
      continue;
    }
    EXPECT_EQ(static_cast<double>(f), e4m3_formula(static_cast<uint8_t>(b))) << b;
    EXPECT_EQ(std::signbit(f), (b & 0x80) != 0) << b;
  }
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));
}

TEST(Fp8, RoundTripAll256Codes) {
  for (int b = 0; b < 256; ++b) {
    const float f = e4m3_to_float(static_cast<uint8_t>(b));
    if (is_nan_code(b)) {
      EXPECT_TRUE(std::isnan(e4m3_to_float(float_to_e4m3(f)))) << b;
      continue;
    }
    EXPECT_EQ(float_to_e4m3(f), b) << b;
  }
}

// The fp16 trick used by the vector kernels: ((b & 0x80) << 8) | ((b & 0x7f) << 7) is the e4m3 value * 2^-8.
TEST(Fp8, Fp16BitTrickIsExact) {
  for (int b = 0; b < 256; ++b) {
    if (is_nan_code(b)) continue;
    const uint16_t h = static_cast<uint16_t>(((b & 0x80) << 8) | ((b & 0x7f) << 7));
    EXPECT_EQ(static_cast<double>(f16_to_float(h)) * 256.0, e4m3_formula(static_cast<uint8_t>(b))) << b;
  }
}

// Brute force: the nearest finite e4m3 value, ties to the even code, |x| beyond 448 saturating.
uint8_t nearest_e4m3(float x) {
  const double a = std::fabs(static_cast<double>(x));
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int c = 0; c <= 0x7e; ++c) {
    const double d = std::fabs(e4m3_formula(static_cast<uint8_t>(c)) - a);
    if (d < best_d || (d == best_d && (c & 1) == 0)) {
      best = c;
      best_d = d;
    }
  }
  if (a >= 448.0) best = 0x7e;
  return static_cast<uint8_t>(best | (std::signbit(x) ? 0x80 : 0));
}

TEST(Fp8, EncodeMatchesBruteForce) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> le(-12.0f, 9.5f);
  for (int i = 0; i < 200000; ++i) {
    float x = std::exp2(le(rng));
    if (i & 1) x = -x;
    ASSERT_EQ(float_to_e4m3(x), nearest_e4m3(x)) << x;
  }
}

TEST(Fp8, EncodeTiesToEven) {
  // every midpoint between neighbouring codes (normal and subnormal) goes to the even code
  for (int c = 0; c < 0x7e; ++c) {
    const double lo = e4m3_formula(static_cast<uint8_t>(c)), hi = e4m3_formula(static_cast<uint8_t>(c + 1));
    const float mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    const int even = (c & 1) == 0 ? c : c + 1;
    EXPECT_EQ(float_to_e4m3(mid), even) << "between codes " << c << " and " << c + 1;
    EXPECT_EQ(float_to_e4m3(-mid), even | 0x80);
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, 0.0f)), c);
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, 1000.0f)), c + 1);
  }
}

TEST(Fp8, EncodeSaturates) {
  for (float x :
       {448.0f, 449.0f, 463.99f, 464.0f, 480.0f, 1000.0f, 1e30f, std::numeric_limits<float>::infinity()}) {
    EXPECT_EQ(float_to_e4m3(x), 0x7e) << x;
    EXPECT_EQ(float_to_e4m3(-x), 0xfe) << x;
  }
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: tie to 0
  EXPECT_EQ(float_to_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_TRUE(std::isnan(e4m3_to_float(float_to_e4m3(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Bf16, RoundTripAndRounding) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<uint32_t> u;
  for (int i = 0; i < 100000; ++i) {
    const uint16_t h = static_cast<uint16_t>(u(rng));
    const float f = bf16_to_float(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16(f), h);
  }
  // ties to even
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f808000u)), 0x3f80);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f818000u)), 0x3f82);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3f808001u)), 0x3f81);
}

TEST(F16, DecodeAllCodes) {
  for (int h = 0; h < 65536; ++h) {
    const int e = (h >> 10) & 31, m = h & 1023;
    const float f = f16_to_float(static_cast<uint16_t>(h));
    if (e == 31) {
      EXPECT_TRUE(m ? std::isnan(f) : std::isinf(f));
      continue;
    }
    const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
    ASSERT_EQ(static_cast<double>(f), (h >> 15) ? -mag : mag) << h;
  }
}

}  // namespace
}  // namespace moert::kernels::test
