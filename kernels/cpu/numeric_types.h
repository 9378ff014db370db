// Scalar conversions between fp32 and the storage types of checkpoints (bf16, fp16, fp8 e4m3).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace moert::kernels {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_float(uint16_t h) {
  return bits_to_float(static_cast<uint32_t>(h) << 16);
}

// Round to nearest even, as torch's .to(torch.bfloat16) does.
inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (man << 13));
  return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
}

// Round to nearest even, overflow to infinity, as numpy's and torch's float16 casts.
inline uint16_t float_to_f16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to 65536 and above: Inf
  if (a < 0x38800000u)  // below 2^-14: subnormal, step 2^-24 (a * 2^24 is exact)
    return static_cast<uint16_t>(sign |
                                 static_cast<uint16_t>(std::nearbyint(bits_to_float(a) * 16777216.0f)));
  const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // keep 10 mantissa bits, to nearest even
  return static_cast<uint16_t>(sign | ((r >> 13) - (112u << 10)));
}

// e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; 0x7f/0xff are NaN; max 448.
inline float e4m3_to_float(uint8_t b) {
  uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  uint32_t exp = (b >> 3) & 0xf, man = b & 0x7u;
  if (exp == 0xf && man == 0x7) return bits_to_float(sign | 0x7fc00000u);
  if (exp == 0) {
    float v = static_cast<float>(man) * 0.001953125f;  // man * 2^-9
    return sign ? -v : v;
  }
  return bits_to_float(sign | ((exp + 120) << 23) | (man << 20));
}

// The bf16 bits of an e4m3 value: exact, since every e4m3 value (NaN included) is a bf16 value.
inline uint16_t e4m3_to_bf16(uint8_t b) {
  return static_cast<uint16_t>(float_to_bits(e4m3_to_float(b)) >> 16);
}

// Round to nearest even with saturation to +-448, as torch's .to(torch.float8_e4m3fn) after a clamp.
inline uint8_t float_to_e4m3(float f) {
  uint32_t u = float_to_bits(f);
  uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint8_t>(sign | 0x7f);
  if (a >= 464.0f) return static_cast<uint8_t>(sign | 0x7e);      // saturate (448 and above round to 448)
  if (a < 0.015625f) {                                            // below 2^-6: subnormal, step 2^-9
    float q = std::nearbyint(a * 512.0f);                         // banker's rounding in the default mode
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));  // q == 8 becomes the smallest normal
  }
  uint32_t ua = float_to_bits(a);
  // keep 3 mantissa bits: round at bit 20 to nearest even
  uint32_t rounded = ua + 0x7ffffu + ((ua >> 20) & 1u);
  uint32_t exp = (rounded >> 23) - 120, man = (rounded >> 20) & 0x7u;
  if (exp > 15 || (exp == 15 && man == 7)) return static_cast<uint8_t>(sign | 0x7e);
  return static_cast<uint8_t>(sign | (exp << 3) | man);
}

}  // namespace moert::kernels
