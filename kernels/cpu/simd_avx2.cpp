// AVX2 + FMA + F16C versions of the kernels (8 lanes); every function carries its own target attribute,
// so this file builds without -m flags and runs only where cpu_isa() chose it.
#include "simd.h"

#ifdef MOERT_KERNELS_X86
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a GCC-only warning, unknown to clang
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "scratch.h"

#define MOERT_TARGET __attribute__((target("avx2,fma,f16c")))
#define MOERT_INLINE MOERT_TARGET inline __attribute__((always_inline))
#define MOERT_ISA_NS simd_avx2

namespace moert::kernels::simd_avx2 {

constexpr int L = 8;
constexpr int kMR = 3;
constexpr int kSmallM = 2;
constexpr int kXwMR = 4;
constexpr int kXwNV = 2;
using vf = __m256;

alignas(32) static const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
// The vector shims read best as one table.
// clang-format off
MOERT_INLINE __m256i tmask(int n) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n)); }
MOERT_INLINE vf vzero() { return _mm256_setzero_ps(); }
MOERT_INLINE vf vset1(float a) { return _mm256_set1_ps(a); }
MOERT_INLINE vf vload(const float* p) { return _mm256_loadu_ps(p); }
MOERT_INLINE vf vload_part(const float* p, int n) { return _mm256_maskload_ps(p, tmask(n)); }
MOERT_INLINE void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
MOERT_INLINE void vstore_part(float* p, vf v, int n) { _mm256_maskstore_ps(p, tmask(n), v); }
MOERT_INLINE vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
MOERT_INLINE vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
MOERT_INLINE vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
MOERT_INLINE vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
MOERT_INLINE vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
MOERT_INLINE vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
MOERT_INLINE vf vabs(vf a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
MOERT_INLINE float vsum(vf v) {
  // clang-format on
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
MOERT_INLINE float vhmax(vf v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

MOERT_INLINE vf cvt_e4m3(__m128i b) {
  __m128i w = _mm_cvtepi8_epi16(b);
  w = _mm_and_si128(_mm_slli_epi16(w, 7), _mm_set1_epi16(static_cast<short>(0xBFFF)));
  return _mm256_cvtph_ps(w);
}
MOERT_INLINE vf load_f8(const uint8_t* p) {
  return cvt_e4m3(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
MOERT_INLINE vf load_f8_part(const uint8_t* p, int n) {
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  return cvt_e4m3(_mm_cvtsi64_si128(static_cast<long long>(v)));
}
MOERT_INLINE void load_f8_pair(const uint8_t* p, vf& lo, vf& hi) {
  __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  w = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16(static_cast<short>(0xBFFF)));
  lo = _mm256_cvtph_ps(_mm256_castsi256_si128(w));
  hi = _mm256_cvtph_ps(_mm256_extracti128_si256(w, 1));
}
// The vector shims read best as one table.
// clang-format off
MOERT_INLINE vf cvt_bf16(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
MOERT_INLINE vf load_bf16(const uint16_t* p) { return cvt_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
MOERT_INLINE vf load_bf16_part(const uint16_t* p, int n) {
  // clang-format on
  alignas(16) uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(t, p, n * 2);
  return cvt_bf16(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
}
MOERT_INLINE vf load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
MOERT_INLINE vf load_f16_part(const uint16_t* p, int n) {
  alignas(16) uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(t, p, n * 2);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
}

constexpr int kBcastMR = 6;  // large-M micro-tile: 6 rows of x x 16 packed weight columns

// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block.
MOERT_INLINE void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    u[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    _mm256_storeu_ps(dst + (4 + c) * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}

MOERT_INLINE __m128 reduce4(vf a, vf b, vf c, vf d) {
  const vf h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

MOERT_INLINE vf pow2i(__m256i n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

MOERT_INLINE vf vexp(vf x) {
  const vf hi = vset1(88.3762626647949f), lo = vset1(-87.3365447504f);
  const vf under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  const vf xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const vf n =
      _mm256_round_ps(vmul(xc, vset1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm256_fnmadd_ps(n, vset1(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, vset1(-2.12194440e-4f), r);
  vf p = vset1(1.9875691500E-4f);
  p = vfma(p, r, vset1(1.3981999507E-3f));
  p = vfma(p, r, vset1(8.3334519073E-3f));
  p = vfma(p, r, vset1(4.1665795894E-2f));
  p = vfma(p, r, vset1(1.6666665459E-1f));
  p = vfma(p, r, vset1(5.0000001201E-1f));
  p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  vf y = vmul(vmul(p, pow2i(n1)), pow2i(_mm256_sub_epi32(ni, n1)));
  y = _mm256_blendv_ps(y, vzero(), under);
  y = _mm256_blendv_ps(y, vset1(INFINITY), over);
  return y;
}

MOERT_INLINE vf round_e4m3(vf v) {
  const vf a = vabs(v);
  const __m256i ua = _mm256_castps_si256(a);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(ua, 20), _mm256_set1_epi32(1));
  __m256i rn = _mm256_add_epi32(_mm256_add_epi32(ua, _mm256_set1_epi32(0x7ffff)), odd);
  rn = _mm256_and_si256(rn, _mm256_set1_epi32(static_cast<int>(0xfff00000u)));
  const vf rnorm = _mm256_min_ps(_mm256_castsi256_ps(rn), vset1(448.0f));
  const vf rsub = vmul(_mm256_round_ps(vmul(a, vset1(512.0f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                       vset1(1.0f / 512.0f));
  vf r = _mm256_blendv_ps(rnorm, rsub, _mm256_cmp_ps(a, vset1(0.015625f), _CMP_LT_OQ));
  r = _mm256_blendv_ps(r, a, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  return _mm256_or_ps(
      r, _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)))));
}

}  // namespace moert::kernels::simd_avx2

#include "simd_impl.inc"

#endif  // MOERT_KERNELS_X86
