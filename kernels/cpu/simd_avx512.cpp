// AVX-512 (F, BW, VL, DQ) + FMA + F16C versions of the kernels; every function carries its own target
// attribute, so this file builds without -m flags and runs only where cpu_isa() chose it.
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

#include "cpu_features.h"
#include "scratch.h"

#define MOERT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define MOERT_INLINE MOERT_TARGET inline __attribute__((always_inline))
#define MOERT_ISA_NS simd_avx512
// The e4m3 table lookup (load_f8_quad) needs VBMI on top; only functions chosen by cpu_vbmi() carry it.
#define MOERT_TARGET_VBMI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx2,fma,f16c")))
#define MOERT_INLINE_VBMI MOERT_TARGET_VBMI inline __attribute__((always_inline))
#define MOERT_HAS_F8_LUT 1

namespace moert::kernels::simd_avx512 {

constexpr int L = 16;
constexpr int kMR = 6;      // rows of x per GEMM micro-tile (x W^T, dot form, 6 x 4 accumulators)
constexpr int kSmallM = 4;  // x W^T with M <= this reads the stored weights directly
constexpr int kXwMR = 6;    // x W micro-tile: 6 rows x kXwNV vectors
constexpr int kXwNV = 4;
using vf = __m512;

// The vector shims read best as one table.
// clang-format off
MOERT_INLINE __mmask16 tmask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
MOERT_INLINE vf vzero() { return _mm512_setzero_ps(); }
MOERT_INLINE vf vset1(float a) { return _mm512_set1_ps(a); }
MOERT_INLINE vf vload(const float* p) { return _mm512_loadu_ps(p); }
MOERT_INLINE vf vload_part(const float* p, int n) { return _mm512_maskz_loadu_ps(tmask(n), p); }
MOERT_INLINE void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
MOERT_INLINE void vstore_part(float* p, vf v, int n) { _mm512_mask_storeu_ps(p, tmask(n), v); }
MOERT_INLINE vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
MOERT_INLINE vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
MOERT_INLINE vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
MOERT_INLINE vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
MOERT_INLINE vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
MOERT_INLINE vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
MOERT_INLINE vf vabs(vf a) { return _mm512_abs_ps(a); }
MOERT_INLINE float vsum(vf v) { return _mm512_reduce_add_ps(v); }
MOERT_INLINE float vhmax(vf v) { return _mm512_reduce_max_ps(v); }
// clang-format on

// e4m3 bytes -> the fp16 with bits ((b & 0x80) << 8) | ((b & 0x7f) << 7), i.e. the e4m3 value * 2^-8
// (exact, subnormals included), widened to fp32.
MOERT_INLINE vf cvt_e4m3(__m128i b) {
  __m256i w = _mm256_cvtepi8_epi16(b);
  w = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16(static_cast<short>(0xBFFF)));
  return _mm512_cvtph_ps(w);
}
MOERT_INLINE vf load_f8(const uint8_t* p) {
  return cvt_e4m3(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
MOERT_INLINE vf load_f8_part(const uint8_t* p, int n) {
  return cvt_e4m3(_mm_maskz_loadu_epi8(tmask(n), p));
}
// 32 codes at once: one widening and one shift/mask for both halves.
MOERT_INLINE void load_f8_pair(const uint8_t* p, vf& lo, vf& hi) {
  __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  w = _mm512_and_si512(_mm512_slli_epi16(w, 7), _mm512_set1_epi16(static_cast<short>(0xBFFF)));
  lo = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
  hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w, 1));
}

// e4m3 -> fp32 by table lookup (VBMI), the same values as load_f8 (e4m3 * 2^-8, exact in bf16 and normal
// in fp32, subnormal codes included, so no fp32 denormal ever reaches an FMA). Per 64 codes: one vpermb
// to put each code where the unpacks below will leave it in order, two vpermi2b over the codes' low 7 bits
// (the bf16's high and low bytes), one ternlog for the sign, two byte unpacks into 32-bit-spaced bf16, and
// a shift or a mask per 16 weights: 10 uops, against 14 for load_f8_pair twice (widening, shift, mask and
// two 2-uop vcvtph2ps per 32), and 5 of the 10 on port 5 only, 2 on port 0 only, which the FMAs balance.
struct F8Lut {
  __m512i hi0, hi1, lo0, lo1, order;
};
// bf16 bits of the e4m3 code c (c < 128) times 2^-8: the fp16 with bits c << 7, as load_f8 reads it.
constexpr uint16_t e4m3_bf16_scaled(int c) {
  const int e = c >> 3, m = c & 7;
  if (e != 0) return static_cast<uint16_t>(((e + 112) << 7) | (m << 4));  // 2^(e-15) (1 + m/8)
  if (m == 0) return 0;
  const int p = m >= 4 ? 2 : (m >= 2 ? 1 : 0);  // m * 2^-17 = 2^(p-17) (m / 2^p)
  return static_cast<uint16_t>(((110 + p) << 7) | ((m - (1 << p)) << (7 - p)));
}
struct F8LutBytes {
  alignas(64) uint8_t hi[128], lo[128], order[64];
  constexpr F8LutBytes() : hi(), lo(), order() {
    for (int c = 0; c < 128; ++c) {
      hi[c] = static_cast<uint8_t>(e4m3_bf16_scaled(c) >> 8);
      lo[c] = static_cast<uint8_t>(e4m3_bf16_scaled(c) & 0xff);
    }
    // byte 16l + 2d (+1, +8, +9) ends up in lane 4l + d of output 0 (1, 2, 3), which is code 16 i + 4l + d
    for (int l = 0; l < 4; ++l)
      for (int d = 0; d < 4; ++d) {
        order[16 * l + 2 * d] = static_cast<uint8_t>(4 * l + d);
        order[16 * l + 2 * d + 1] = static_cast<uint8_t>(16 + 4 * l + d);
        order[16 * l + 8 + 2 * d] = static_cast<uint8_t>(32 + 4 * l + d);
        order[16 * l + 9 + 2 * d] = static_cast<uint8_t>(48 + 4 * l + d);
      }
  }
};
inline constexpr F8LutBytes kF8LutBytes{};

MOERT_INLINE_VBMI F8Lut f8_lut() {
  const F8LutBytes& b = kF8LutBytes;
  return {_mm512_load_si512(b.hi), _mm512_load_si512(b.hi + 64), _mm512_load_si512(b.lo),
          _mm512_load_si512(b.lo + 64), _mm512_load_si512(b.order)};
}
// 64 codes -> codes 0-15, 16-31, 32-47, 48-63 as fp32 (times 2^-8).
MOERT_INLINE_VBMI void load_f8_quad(const uint8_t* p, const F8Lut& t, vf& a, vf& b, vf& c, vf& d) {
  const __m512i q = _mm512_permutexvar_epi8(t.order, _mm512_loadu_si512(p));
  // high byte: the magnitude's from the table, the sign from the code (A | (B & C) = 0xF8)
  const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(t.hi0, q, t.hi1), q,
                                               _mm512_set1_epi8(static_cast<char>(0x80)), 0xF8);
  const __m512i lo = _mm512_permutex2var_epi8(t.lo0, q, t.lo1);
  const __m512i w0 = _mm512_unpacklo_epi8(lo, hi), w1 = _mm512_unpackhi_epi8(lo, hi);
  const __m512i top = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  a = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
  b = _mm512_castsi512_ps(_mm512_and_si512(w0, top));
  c = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
  d = _mm512_castsi512_ps(_mm512_and_si512(w1, top));
}

MOERT_INLINE vf cvt_bf16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
MOERT_INLINE vf load_bf16(const uint16_t* p) {
  return cvt_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
MOERT_INLINE vf load_bf16_part(const uint16_t* p, int n) {
  return cvt_bf16(_mm256_maskz_loadu_epi16(tmask(n), p));
}
MOERT_INLINE vf load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
MOERT_INLINE vf load_f16_part(const uint16_t* p, int n) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tmask(n), p));
}

constexpr int kBcastMR = 12;  // large-M micro-tile: 12 rows of x x 32 packed weight columns

// dst[c * ldd + r] = src[r * lds + c] for a 16 x 16 block.
MOERT_INLINE void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 ab_lo = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44),
                 ab_hi = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    const __m512 cd_lo = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44),
                 cd_hi = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    _mm512_storeu_ps(dst + (c)*ldd, _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88));
    _mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xDD));
    _mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88));
    _mm512_storeu_ps(dst + (12 + c) * ldd, _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xDD));
  }
}

// [sum(a), sum(b), sum(c), sum(d)]
MOERT_INLINE __m128 reduce4(vf a, vf b, vf c, vf d) {
  const vf ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const vf cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  const __m512d abd = _mm512_castps_pd(ab), cdd = _mm512_castps_pd(cd);
  const vf s = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd)));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// exp(x) with about 1 ulp of error (Cephes' expf polynomial after a Cody-Waite reduction); 0 below -87.3,
// inf above 88.7, NaN stays NaN.
MOERT_INLINE vf vexp(vf x) {
  const vf hi = vset1(88.3762626647949f), lo = vset1(-87.3365447504f);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  vf xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const vf n = _mm512_roundscale_ps(vmul(xc, vset1(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm512_fnmadd_ps(n, vset1(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, vset1(-2.12194440e-4f), r);
  vf p = vset1(1.9875691500E-4f);
  p = vfma(p, r, vset1(1.3981999507E-3f));
  p = vfma(p, r, vset1(8.3334519073E-3f));
  p = vfma(p, r, vset1(4.1665795894E-2f));
  p = vfma(p, r, vset1(1.6666665459E-1f));
  p = vfma(p, r, vset1(5.0000001201E-1f));
  const vf r2 = vmul(r, r);
  p = vfma(p, r2, vadd(r, vset1(1.0f)));
  vf y = _mm512_scalef_ps(p, n);
  y = _mm512_mask_mov_ps(y, under, vzero());
  y = _mm512_mask_mov_ps(y, over, vset1(INFINITY));
  return y;
}

// Rounds v (already divided by the tile scale) to the nearest e4m3 value (ties to even, saturating at
// 448), returned as fp32: the same numbers float_to_e4m3 then e4m3_to_float give.
MOERT_INLINE vf round_e4m3(vf v) {
  const vf a = vabs(v);
  const __m512i ua = _mm512_castps_si512(a);
  // normal range: keep 3 mantissa bits, round to nearest even at bit 20
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(ua, 20), _mm512_set1_epi32(1));
  __m512i rn = _mm512_add_epi32(_mm512_add_epi32(ua, _mm512_set1_epi32(0x7ffff)), odd);
  rn = _mm512_and_si512(rn, _mm512_set1_epi32(static_cast<int>(0xfff00000u)));
  vf rnorm = _mm512_min_ps(_mm512_castsi512_ps(rn), vset1(448.0f));
  // subnormal range (< 2^-6): steps of 2^-9, ties to even
  const vf rsub =
      vmul(_mm512_roundscale_ps(vmul(a, vset1(512.0f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
           vset1(1.0f / 512.0f));
  const __mmask16 small = _mm512_cmp_ps_mask(a, vset1(0.015625f), _CMP_LT_OQ);
  vf r = _mm512_mask_mov_ps(rnorm, small, rsub);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_ps(r, nan, a);
  // copy the sign back
  return _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(r),
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int>(0x80000000u)))));
}

}  // namespace moert::kernels::simd_avx512

#include "simd_impl.inc"

#endif  // MOERT_KERNELS_X86
