// The q4 GEMM (gemm_q4.h). The decode kernel is written three times (AVX-512, AVX2 with each function
// carrying its target attribute, and portable C++) and chosen by cpu_isa() at run time, as the other
// kernels are. Per output row it walks the row's groups: each 32 columns are 16 bytes, unpacked into two
// runs of 16 codes (low nibbles: columns 0..15, high nibbles: 16..31), converted to fp32 and multiplied
// into the group's sum of code x activation; the group scale multiplies that sum once. The offsets add
// sum_g m_g * (sum of x over group g), the group sums of x computed once per call. So no weight is ever
// dequantised to memory at decode sizes: half a byte per weight plus 4 bytes per group is all that is read.
#include "gemm_q4.h"

#include <algorithm>
#include <vector>

#include "cpu_features.h"
#include "gemm.h"
#include "numeric_types.h"
#include "scratch.h"
#include "simd.h"

#ifdef MOERT_KERNELS_X86
// GCC 12 warns inside its own AVX-512 headers (as in simd_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a GCC-only warning, unknown to clang
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

namespace moert::kernels {
namespace {

constexpr int64_t kPanelRows = 256;  // weight rows dequantised per step of the panel path
constexpr int64_t kRowGrain = 16;    // output rows per work item of the decode kernel
// Software prefetch distance of the decode kernels in weight rows (as the FP8 tile's kPrefetchRows): the
// interleaved row streams are more than the hardware prefetchers run ahead of.
[[maybe_unused]] constexpr int64_t kQ4PrefetchRows = 8;  // the x86 kernels only

inline const uint8_t* row_codes(const WeightRef& w, int64_t n) {
  return static_cast<const uint8_t*>(w.data) + n * (w.ld / 2);
}

// xs[i * groups + g] = sum of x row i over group g.
void group_sums(const float* x, int64_t m, int64_t ldx, int64_t k, int64_t group, float* xs) {
  const int64_t groups = k / group;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      const float* p = x + i * ldx + g * group;
      float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t c = 0; c < group; c += 8)
        for (int j = 0; j < 8; ++j) s[j] += p[c + j];
      xs[i * groups + g] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
}

struct DecodeArgs {
  const float* x;
  int64_t m, ldx;
  const float* xs;
  const WeightRef* w;
  float* y;
  int64_t ldy;
};

template <int M>
void decode_rows_portable(const DecodeArgs& a, int64_t n0, int64_t n1) {
  const WeightRef& w = *a.w;
  const int64_t groups = w.k / w.group;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* p = row_codes(w, n);
    const uint16_t* sc = w.q4_scale + n * w.q4_ld;
    const uint16_t* mn = w.q4_min + n * w.q4_ld;
    float acc[M] = {};
    for (int64_t g = 0; g < groups; ++g) {
      float part[M] = {};
      for (int64_t c = g * w.group; c < (g + 1) * w.group; c += 32) {
        const uint8_t* b = p + c / 2;
        for (int i = 0; i < M; ++i) {
          const float* xi = a.x + i * a.ldx + c;
          float s = 0.0f;
          for (int j = 0; j < 16; ++j)
            s += static_cast<float>(b[j] & 15) * xi[j] + static_cast<float>(b[j] >> 4) * xi[16 + j];
          part[i] += s;
        }
      }
      const float d = f16_to_float(sc[g]), off = f16_to_float(mn[g]);
      for (int i = 0; i < M; ++i) acc[i] += d * part[i] + off * a.xs[i * groups + g];
    }
    for (int i = 0; i < M; ++i) a.y[i * a.ldy + n] = acc[i];
  }
}

#ifdef MOERT_KERNELS_X86
#define MOERT_Q4_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define MOERT_Q4_AVX2 __attribute__((target("avx2,fma,f16c")))

// sum_g mins[g] * xs[g], 16 groups per step.
MOERT_Q4_AVX512 inline float offsets_avx512(const uint16_t* mn, const float* xs, int64_t groups) {
  __m512 acc = _mm512_setzero_ps();
  int64_t g = 0;
  for (; g + 16 <= groups; g += 16)
    acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mn + g))),
                          _mm512_loadu_ps(xs + g), acc);
  float s = _mm512_reduce_add_ps(acc);
  for (; g < groups; ++g) s += _cvtsh_ss(mn[g]) * xs[g];
  return s;
}

// NR output rows at once (sharing each x load), M rows of x, BLK 32-column blocks per group (compile
// time, so the group loop is straight-line code walking pointers). The scales of 16 groups are converted
// in one instruction and each group's broadcast by a permute, not a scalar conversion per group.
template <int M, int NR, int BLK>
MOERT_Q4_AVX512 inline void decode_tile_avx512(const DecodeArgs& a, int64_t n) {
  const WeightRef& w = *a.w;
  const int64_t groups = w.k / w.group;
  const __m512i low = _mm512_set1_epi32(15);
  const uint8_t* p[NR];
  const uint16_t* sc[NR];
  for (int r = 0; r < NR; ++r) {
    p[r] = row_codes(w, n + r);
    sc[r] = w.q4_scale + (n + r) * w.q4_ld;
  }
  __m512 acc[NR][M];
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
  const float* xp = a.x;
  const int64_t pf = kQ4PrefetchRows * (w.ld / 2);
  for (int64_t g0 = 0; g0 < groups; g0 += 16) {
    const int64_t gn = std::min<int64_t>(16, groups - g0);
    const __mmask16 gm = static_cast<__mmask16>((1u << gn) - 1);
    __m512 dv[NR];
    for (int r = 0; r < NR; ++r) {
      dv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, sc[r] + g0));
      _mm_prefetch(reinterpret_cast<const char*>(sc[r] + g0 + kQ4PrefetchRows * w.q4_ld), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w.q4_min + (n + r + kQ4PrefetchRows) * w.q4_ld + g0),
                   _MM_HINT_T0);
    }
    __m512i gi = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    for (int64_t g = 0; g < gn; ++g) {
      if ((g * 16 * BLK) % 64 == 0)  // one prefetch per cache line of codes
        for (int r = 0; r < NR; ++r) _mm_prefetch(reinterpret_cast<const char*>(p[r] + pf), _MM_HINT_T0);
      __m512 part[NR][M];
#pragma GCC unroll 4
      for (int b = 0; b < BLK; ++b) {
        __m512 xv0[M], xv1[M];
        for (int i = 0; i < M; ++i) {
          xv0[i] = _mm512_loadu_ps(xp + i * a.ldx + 32 * b);
          xv1[i] = _mm512_loadu_ps(xp + i * a.ldx + 32 * b + 16);
        }
        for (int r = 0; r < NR; ++r) {
          const __m512i v =
              _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[r] + 16 * b)));
          const __m512 q0 = _mm512_cvtepi32_ps(_mm512_and_si512(v, low));
          const __m512 q1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
          for (int i = 0; i < M; ++i) {
            part[r][i] = b == 0 ? _mm512_mul_ps(q0, xv0[i]) : _mm512_fmadd_ps(q0, xv0[i], part[r][i]);
            part[r][i] = _mm512_fmadd_ps(q1, xv1[i], part[r][i]);
          }
        }
      }
      for (int r = 0; r < NR; ++r) {
        const __m512 d = _mm512_permutexvar_ps(gi, dv[r]);
        for (int i = 0; i < M; ++i) acc[r][i] = _mm512_fmadd_ps(part[r][i], d, acc[r][i]);
        p[r] += 16 * BLK;
      }
      gi = _mm512_add_epi32(gi, one);
      xp += 32 * BLK;
    }
  }
  for (int r = 0; r < NR; ++r) {
    const uint16_t* mn = w.q4_min + (n + r) * w.q4_ld;
    for (int i = 0; i < M; ++i)
      a.y[i * a.ldy + n + r] =
          _mm512_reduce_add_ps(acc[r][i]) + offsets_avx512(mn, a.xs + i * groups, groups);
  }
}

template <int M, int BLK>
MOERT_Q4_AVX512 void decode_rows_avx512_g(const DecodeArgs& a, int64_t n0, int64_t n1) {
  constexpr int NR = M == 1 ? 4 : 2;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) decode_tile_avx512<M, NR, BLK>(a, n);
  for (; n < n1; ++n) decode_tile_avx512<M, 1, BLK>(a, n);
}

template <int M>
MOERT_Q4_AVX512 void decode_rows_avx512(const DecodeArgs& a, int64_t n0, int64_t n1) {
  switch (a.w->group) {
    case 32:
      return decode_rows_avx512_g<M, 1>(a, n0, n1);
    case 64:
      return decode_rows_avx512_g<M, 2>(a, n0, n1);
    default:
      return decode_rows_avx512_g<M, 4>(a, n0, n1);
  }
}

MOERT_Q4_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

MOERT_Q4_AVX2 inline float offsets_avx2(const uint16_t* mn, const float* xs, int64_t groups) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8)
    acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mn + g))),
                          _mm256_loadu_ps(xs + g), acc);
  float s = hsum_avx2(acc);
  for (; g < groups; ++g) s += _cvtsh_ss(mn[g]) * xs[g];
  return s;
}

template <int M, int NR>
MOERT_Q4_AVX2 inline void decode_tile_avx2(const DecodeArgs& a, int64_t n) {
  const WeightRef& w = *a.w;
  const int64_t groups = w.k / w.group, blocks = w.group / 32;
  const __m256i low = _mm256_set1_epi32(15);
  const uint8_t* p[NR];
  const uint16_t* sc[NR];
  for (int r = 0; r < NR; ++r) {
    p[r] = row_codes(w, n + r);
    sc[r] = w.q4_scale + (n + r) * w.q4_ld;
  }
  __m256 acc[NR][M];
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = _mm256_setzero_ps();
  for (int64_t g0 = 0; g0 < groups; g0 += 8) {
    const int64_t gn = std::min<int64_t>(8, groups - g0);
    __m256 dv[NR];
    for (int r = 0; r < NR; ++r) {
      alignas(16) uint16_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::copy(sc[r] + g0, sc[r] + g0 + gn, h);
      dv[r] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
    }
    __m256i gi = _mm256_setzero_si256();
    for (int64_t g = g0; g < g0 + gn; ++g) {
      __m256 part[NR][M];
      for (int r = 0; r < NR; ++r)
        for (int i = 0; i < M; ++i) part[r][i] = _mm256_setzero_ps();
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t c = (g * blocks + b) * 32;
        if (c % 128 == 0)  // one prefetch per cache line of codes
          for (int r = 0; r < NR; ++r)
            _mm_prefetch(reinterpret_cast<const char*>(p[r] + c / 2 + kQ4PrefetchRows * (w.ld / 2)),
                         _MM_HINT_T0);
        // bytes 0..7: columns 0..7 (low nibbles) and 16..23 (high); bytes 8..15: columns 8..15 and 24..31.
        for (int h = 0; h < 2; ++h)
          for (int r = 0; r < NR; ++r) {
            const __m256i v =
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p[r] + c / 2 + 8 * h)));
            const __m256 qlo = _mm256_cvtepi32_ps(_mm256_and_si256(v, low));
            const __m256 qhi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
            for (int i = 0; i < M; ++i) {
              const float* xi = a.x + i * a.ldx + c + 8 * h;
              part[r][i] = _mm256_fmadd_ps(qlo, _mm256_loadu_ps(xi), part[r][i]);
              part[r][i] = _mm256_fmadd_ps(qhi, _mm256_loadu_ps(xi + 16), part[r][i]);
            }
          }
      }
      for (int r = 0; r < NR; ++r) {
        const __m256 d = _mm256_permutevar8x32_ps(dv[r], gi);
        for (int i = 0; i < M; ++i) acc[r][i] = _mm256_fmadd_ps(part[r][i], d, acc[r][i]);
      }
      gi = _mm256_add_epi32(gi, _mm256_set1_epi32(1));
    }
  }
  for (int r = 0; r < NR; ++r) {
    const uint16_t* mn = w.q4_min + (n + r) * w.q4_ld;
    for (int i = 0; i < M; ++i)
      a.y[i * a.ldy + n + r] = hsum_avx2(acc[r][i]) + offsets_avx2(mn, a.xs + i * groups, groups);
  }
}

// Two output rows at once where the registers allow (16 on AVX2: up to 2 rows of x).
template <int M>
MOERT_Q4_AVX2 void decode_rows_avx2(const DecodeArgs& a, int64_t n0, int64_t n1) {
  int64_t n = n0;
  if constexpr (M <= 2)
    for (; n + 2 <= n1; n += 2) decode_tile_avx2<M, 2>(a, n);
  for (; n < n1; ++n) decode_tile_avx2<M, 1>(a, n);
}
#endif

template <int M>
void decode_rows(const DecodeArgs& a, int64_t n0, int64_t n1) {
#ifdef MOERT_KERNELS_X86
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      return decode_rows_avx512<M>(a, n0, n1);
    case CpuIsa::kAvx2:
      return decode_rows_avx2<M>(a, n0, n1);
    default:
      break;
  }
#endif
  decode_rows_portable<M>(a, n0, n1);
}

void decode_rows_any(const DecodeArgs& a, int64_t n0, int64_t n1) {
  switch (a.m) {
    case 1:
      return decode_rows<1>(a, n0, n1);
    case 2:
      return decode_rows<2>(a, n0, n1);
    case 3:
      return decode_rows<3>(a, n0, n1);
    default:
      return decode_rows<4>(a, n0, n1);
  }
}

}  // namespace

float q4_weight_at(const WeightRef& w, int64_t row, int64_t col) {
  const uint8_t b = row_codes(w, row)[(col / 32) * 16 + (col % 16)];
  const int q = (col % 32) < 16 ? (b & 15) : (b >> 4);
  const int64_t g = col / w.group;
  return f16_to_float(w.q4_scale[row * w.q4_ld + g]) * static_cast<float>(q) +
         f16_to_float(w.q4_min[row * w.q4_ld + g]);
}

void dequant_q4_row(const WeightRef& w, int64_t row, int64_t col0, int64_t count, float* out) {
  const uint8_t* p = row_codes(w, row);
  const uint16_t* sc = w.q4_scale + row * w.q4_ld;
  const uint16_t* mn = w.q4_min + row * w.q4_ld;
  int64_t c = col0;
  const int64_t end = col0 + count;
  while (c < end) {
    // Whole 32-column blocks in one go (the compiler vectorises the two runs); edges column by column.
    if (c % 32 == 0 && c + 32 <= end) {
      const uint8_t* b = p + c / 2;
      const float d = f16_to_float(sc[c / w.group]), off = f16_to_float(mn[c / w.group]);
      float* o = out + (c - col0);
      for (int j = 0; j < 16; ++j) {
        o[j] = d * static_cast<float>(b[j] & 15) + off;
        o[16 + j] = d * static_cast<float>(b[j] >> 4) + off;
      }
      c += 32;
    } else {
      out[c - col0] = q4_weight_at(w, row, c);
      ++c;
    }
  }
}

void gemm_q4_decode(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                    ThreadPool* pool) {
  const int64_t groups = w.k / w.group;
  for (int64_t i0 = 0; i0 < m; i0 += kQ4DecodeRows) {
    const int64_t mi = std::min(kQ4DecodeRows, m - i0);
    float* xs = tls_scratch(7, static_cast<size_t>(mi * groups));
    group_sums(x + i0 * ldx, mi, ldx, w.k, w.group, xs);
    const DecodeArgs a{x + i0 * ldx, mi, ldx, xs, &w, y + i0 * ldy, ldy};
    const DecodeArgs* ap = &a;
    const int64_t items = (w.n + kRowGrain - 1) / kRowGrain;
    parallel_for(pool, items, 1, [ap](int64_t b, int64_t e, int) {
      decode_rows_any(*ap, b * kRowGrain, std::min(ap->w->n, e * kRowGrain));
    });
  }
}

void gemm_q4_panel_fp32(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                        ThreadPool* pool, bool row_invariant) {
  if (m <= 0) return;
  const int64_t rows = std::min(kPanelRows, w.n);
  float* panel = tls_scratch(7, static_cast<size_t>(rows * w.k));
  for (int64_t r0 = 0; r0 < w.n; r0 += kPanelRows) {
    const int64_t nr = std::min(kPanelRows, w.n - r0);
    const WeightRef* wp = &w;
    parallel_for(pool, nr, 8, [wp, panel, r0](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r) dequant_q4_row(*wp, r0 + r, 0, wp->k, panel + r * wp->k);
    });
    WeightRef f;
    f.type = DType::kF32;
    f.data = panel;
    f.n = nr;
    f.k = w.k;
    f.ld = w.k;
    gemm_xwt(x, m, ldx, f, y + r0, ldy, pool, row_invariant);
  }
}

void gemm_q4_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                 ThreadPool* pool, bool row_invariant) {
  if (m <= 0) return;
  if (row_invariant) return gemm_q4_panel_fp32(x, m, ldx, w, y, ldy, pool, true);
  if (m <= kQ4DecodeRows) {
    if (q4_int8_enabled() && gemm_q4_decode_int8(x, m, ldx, w, y, ldy, pool)) return;
    return gemm_q4_decode(x, m, ldx, w, y, ldy, pool);
  }
  const Q4PrefillPath path = q4_prefill_path();
  if (path != Q4PrefillPath::kFp32Panel && gemm_q4_prefill(x, m, ldx, w, y, ldy, pool, path)) return;
  gemm_q4_panel_fp32(x, m, ldx, w, y, ldy, pool, false);
}

}  // namespace moert::kernels
