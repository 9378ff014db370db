// The pieces the int8-activation q4 kernels share (gemm_q4_int8.cpp: decode; gemm_q4_prefill.cpp: VNNI and
// AMX prefill): x quantised per weight group, s_g = amax_g / 127, xq = round(x / s_g) in int8 (ties to even),
// S_g = s_g * sum(xq over g). One quantiser, so every int8 path sees the same xq, s and S for a row.
// x86 only (AVX-512 VNNI); callers check q4_int8_supported() first.
#pragma once
#include <cstdint>

#include "simd.h"
#include "thread_pool.h"

#ifdef MOERT_KERNELS_X86
// GCC 12 warns inside its own AVX-512 headers (as in simd_avx512.cpp); set here, for the rest of the two
// files that include this (gemm_q4_int8.cpp, gemm_q4_prefill.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

namespace moert::kernels::q4i8 {

// Columns per step of the layout: 64 bytes of codes, 4 blocks of 32 columns.
constexpr int64_t kChunk = 128;

// Whether the lane-to-group tables below work for this group size: a 128-column step must not straddle
// two 16-group windows of scales, so groups of 32, 64 or a multiple of 128 columns.
inline bool group_supported(int64_t group) {
  return group > 0 && (kChunk % group == 0 || group % kChunk == 0) && group % 32 == 0;
}

inline int64_t chunks_of(int64_t k) {
  return (k + kChunk - 1) / kChunk;
}

// Where column c of a row sits in the quantised row's layout: per 128-column chunk, the 4 blocks' columns
// 0..15 (the codes' low nibbles of the chunk's 64 bytes), then their columns 16..31 (the high nibbles).
inline int64_t layout_pos(int64_t c) {
  const int64_t ch = c / kChunk, b = (c % kChunk) / 32, half = (c % 32) / 16;
  return ch * kChunk + half * 64 + b * 16 + c % 16;
}

// One row of x (k columns, groups of `group`): xq [chunks * 128] in the layout above (zero past k), sx
// [chunks * 16] (lane L of chunk ch: s_g of block L / 4's group, 0 past k), xsum [k / group] (S_g).
void quantize_row(const float* x, int64_t k, int64_t group, int8_t* xq, float* sx, float* xsum);

// m rows of x quantised, in the kernels' order, with the lane tables of their k x group layout.
struct Q8Rows {
  const int8_t* xq;    // [m][chunks * 128]: per chunk the 4 blocks' columns 0..15, then their 16..31
  const float* sx;     // [m][chunks * 16]: lane L of chunk ch: s_g of block L / 4's group (0 past k)
  const float* xsum;   // [m][groups]: S_g = s_g * sum(xq over g)
  const int32_t* gi;   // [chunks * 16]: lane L's group minus its 16-group window's first
  const int32_t* win;  // [chunks]: the window's first group
  int64_t m, chunks, groups;

  // Rows i0 .. i0 + n of these.
  Q8Rows rows(int64_t i0, int64_t n) const {
    return {xq + i0 * chunks * kChunk, sx + i0 * chunks * 16, xsum + i0 * groups, gi, win, n, chunks, groups};
  }
};

// Quantises x [m][k] (rows ldx apart), the rows split over the pool, into the calling thread's buffers
// (valid until its next call).
Q8Rows quantize_rows(const float* x, int64_t m, int64_t ldx, int64_t k, int64_t group, ThreadPool* pool);

// Lane-to-group tables of a k x group layout: gi [chunks * 16] (lane L's group minus its 16-group window's
// first, 0 past k), win [chunks] (the window's first group).
void lane_groups(int64_t k, int64_t group, int32_t* gi, int32_t* win);

#ifdef MOERT_KERNELS_X86
#define MOERT_Q4_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

// The sum of v's lanes in one fixed order (lanes i and i + 8, then i and i + 4, i and i + 2, i and i + 1:
// GCC's _mm512_reduce_add_ps), written out so that reduce16 can match it to the bit on any compiler.
MOERT_Q4_VNNI inline float hsum(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

// hsum of 16 vectors at once, the same additions: lane 4 i + r of the result is hsum(v[4 r + i]).
MOERT_Q4_VNNI inline __m512 reduce16(const __m512 v[16]) {
  __m512 a[8], b[4], c[2];
  for (int t = 0; t < 8; ++t)  // 256-bit halves: lanes 0..7 of v[2t], then of v[2t + 1]
    a[t] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * t], v[2 * t + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * t], v[2 * t + 1], 0xEE));
  for (int t = 0; t < 4; ++t)  // 128-bit halves: 128-bit lane q holds v[4t + q]'s 4 partial sums
    b[t] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * t], a[2 * t + 1], 0x88),
                         _mm512_shuffle_f32x4(a[2 * t], a[2 * t + 1], 0xDD));
  for (int t = 0; t < 2; ++t)  // lanes 0 + 2 and 1 + 3 of v[8t + q] and of v[8t + 4 + q]
    c[t] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * t], b[2 * t + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(b[2 * t], b[2 * t + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// The offsets' 16-group part, one vector per (weight row, x row): sum over 16-group steps of mn * xsum.
MOERT_Q4_VNNI inline __m512 offsets_vector(const uint16_t* mn, const float* xsum, int64_t full) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < full; g += 16)
    acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mn + g))),
                          _mm512_loadu_ps(xsum + g), acc);
  return acc;
}

// sum_g mn[g] (fp16 offsets) * xsum[g]: hsum of offsets_vector over the whole 16-group steps, then the
// rest one fused multiply-add each, in order.
MOERT_Q4_VNNI inline float offsets(const uint16_t* mn, const float* xsum, int64_t groups) {
  const int64_t full = groups / 16 * 16;
  float s = hsum(offsets_vector(mn, xsum, full));
  for (int64_t g = full; g < groups; ++g)
    s = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(_cvtsh_ss(mn[g])), _mm_set_ss(xsum[g]), _mm_set_ss(s)));
  return s;
}
#endif

}  // namespace moert::kernels::q4i8
