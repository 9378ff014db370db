// The int8-activation decode kernel for q4 weights (gemm_q4.h, AVX-512 VNNI), as llama.cpp multiplies its
// 4-bit blocks with q8 activations. Each row of x is quantised per weight group: s_g = amax_g / 127,
// xq = round(x / s_g) in int8 (ties to even), and S_g = s_g * sum(xq over g). Then for weight row n
//   y = sum_g d_g * s_g * (sum_c q_c * xq_c)  +  sum_g m_g * S_g,
// which is sum_c (d q_c + m) * (s xq_c) exactly in real arithmetic: the only error is the rounding of x
// (|s xq - x| <= s / 2), the offsets meeting the same rounded x as the codes do (the error then scales
// with the weights, not with the codes). The integer dot runs on vpdpbusd (the 4-bit codes are unsigned
// bytes, xq signed): per 128 columns one 64-byte load, a mask and a shift for the nibbles, two vpdpbusd,
// a conversion and an FMA against the lane's d_g * s_g, where the fp32 kernel spends seven instructions
// per 32 columns. fp32 from there on: per lane across the row, then one reduction.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu_features.h"
#include "gemm_fp8act.h"
#include "gemm_q4.h"
#include "gemm_q4_int8.h"
#include "simd.h"

namespace moert::kernels {
namespace {

std::atomic<bool>& int8_on() {
  static std::atomic<bool> v{q4_int8_supported() && !env_is("MOERT_Q4_INT8", {"off"})};
  return v;
}

#ifdef MOERT_KERNELS_X86

using q4i8::kChunk;
constexpr int64_t kRowGrain8 = 16;  // output rows per work item
// Software prefetch distance in weight rows, as the FP8 decode tile's (simd_impl.inc kPrefetchRows): NR
// interleaved row streams are more than the hardware prefetchers run ahead of.
constexpr int64_t kPrefetchRows8 = 8;

using q4i8::Q8Rows;

struct Int8Args {
  Q8Rows q;  // up to kQ4DecodeRows rows
  const WeightRef* w;
  float* y;
  int64_t ldy;
};

// NR output rows (sharing each activation load) times M rows of x.
template <int M, int NR>
MOERT_Q4_VNNI inline void int8_tile(const Int8Args& a, int64_t n) {
  const WeightRef& w = *a.w;
  const Q8Rows& q = a.q;
  const int64_t xstride = q.chunks * kChunk, sstride = q.chunks * 16;
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const int64_t tail_bytes = (w.k - (q.chunks - 1) * kChunk) / 2;  // 16 .. 64
  const __mmask64 tail = tail_bytes >= 64 ? ~__mmask64{0} : ((__mmask64{1} << tail_bytes) - 1);
  const int64_t pf = kPrefetchRows8 * (w.ld / 2);
  const uint8_t* p[NR];
  const uint16_t* sc[NR];
  for (int r = 0; r < NR; ++r) {
    p[r] = static_cast<const uint8_t*>(w.data) + (n + r) * (w.ld / 2);
    sc[r] = w.q4_scale + (n + r) * w.q4_ld;
  }
  __m512 acc[NR][M], dv[NR];
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
  int64_t win = -1;
  for (int64_t ch = 0; ch < q.chunks; ++ch) {
    if (q.win[ch] != win) {  // the next 16 groups' scales, converted once
      win = q.win[ch];
      const int64_t gn = std::min<int64_t>(16, q.groups - win);
      const __mmask16 gm = static_cast<__mmask16>((1u << gn) - 1);
      for (int r = 0; r < NR; ++r) {
        dv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, sc[r] + win));
        _mm_prefetch(reinterpret_cast<const char*>(sc[r] + win + kPrefetchRows8 * w.q4_ld), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(w.q4_min + (n + r + kPrefetchRows8) * w.q4_ld + win),
                     _MM_HINT_T0);
      }
    }
    const __m512i gi = _mm512_loadu_si512(q.gi + ch * 16);
    const __mmask64 bm = ch + 1 == q.chunks ? tail : ~__mmask64{0};
    __m512i xlo[M], xhi[M];
    __m512 sv[M];
    for (int i = 0; i < M; ++i) {
      const int8_t* xi = q.xq + i * xstride + ch * kChunk;
      xlo[i] = _mm512_loadu_si512(xi);
      xhi[i] = _mm512_loadu_si512(xi + 64);
      sv[i] = _mm512_loadu_ps(q.sx + i * sstride + ch * 16);
    }
    for (int r = 0; r < NR; ++r)
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + ch * (kChunk / 2) + pf), _MM_HINT_T0);
    for (int r = 0; r < NR; ++r) {
      const __m512i codes = _mm512_maskz_loadu_epi8(bm, p[r] + ch * (kChunk / 2));
      const __m512i lo = _mm512_and_si512(codes, nib),
                    hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nib);
      const __m512 d = _mm512_permutexvar_ps(gi, dv[r]);
      for (int i = 0; i < M; ++i) {
        const __m512i dot =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo[i]), hi, xhi[i]);
        acc[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(d, sv[i]), acc[r][i]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    const uint16_t* mn = w.q4_min + (n + r) * w.q4_ld;
    for (int i = 0; i < M; ++i)
      a.y[i * a.ldy + n + r] = q4i8::hsum(acc[r][i]) + q4i8::offsets(mn, q.xsum + i * q.groups, q.groups);
  }
}

template <int M>
MOERT_Q4_VNNI void int8_rows(const Int8Args& a, int64_t n0, int64_t n1) {
  constexpr int NR = M <= 2 ? 4 : 2;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) int8_tile<M, NR>(a, n);
  for (; n < n1; ++n) int8_tile<M, 1>(a, n);
}

void int8_rows_any(const Int8Args& a, int64_t n0, int64_t n1) {
  switch (a.q.m) {
    case 1:
      return int8_rows<1>(a, n0, n1);
    case 2:
      return int8_rows<2>(a, n0, n1);
    case 3:
      return int8_rows<3>(a, n0, n1);
    default:
      return int8_rows<4>(a, n0, n1);
  }
}
#endif

}  // namespace

#ifdef MOERT_KERNELS_X86
namespace q4i8 {  // gemm_q4_int8.h

MOERT_Q4_VNNI void quantize_row(const float* x, int64_t k, int64_t group, int8_t* xq, float* sx,
                                float* xsum) {
  const int64_t groups = k / group, chunks = chunks_of(k);
  std::memset(xq, 0, static_cast<size_t>(chunks * kChunk));
  std::memset(sx, 0, static_cast<size_t>(chunks * 16) * sizeof(float));
  for (int64_t g = 0; g < groups; ++g) {
    const float* p = x + g * group;
    __m512 amax = _mm512_setzero_ps(), zero = _mm512_setzero_ps();
    for (int64_t c = 0; c < group; c += 16) {
      const __m512 v = _mm512_loadu_ps(p + c);
      amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
      zero = _mm512_add_ps(zero, _mm512_mul_ps(v, _mm512_setzero_ps()));  // NaN where v is NaN or Inf
    }
    const float a = _mm512_reduce_max_ps(amax);
    // max drops NaNs, and a NaN or Inf would become a finite int8 code: the group's scale is NaN instead,
    // so the output is NaN, as the fp32 kernels give, not a plausible number.
    const bool finite = _mm512_reduce_add_ps(zero) == 0.0f;
    const float s = finite ? a / 127.0f : std::numeric_limits<float>::quiet_NaN();
    const float inv = finite && a > 0.0f && std::isfinite(127.0f / a) ? 127.0f / a : 0.0f;  // tiny amax: 0s
    const __m512 vinv = _mm512_set1_ps(inv);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t c = 0; c < group; c += 16) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p + c), vinv));  // ties to even
      sum = _mm512_add_epi32(sum, q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + layout_pos(g * group + c)), _mm512_cvtsepi32_epi8(q));
    }
    xsum[g] = s * static_cast<float>(_mm512_reduce_add_epi32(sum));
    for (int64_t c = 0; c < group; c += 32) {
      const int64_t col = g * group + c, ch = col / kChunk, b = (col % kChunk) / 32;
      for (int l = 0; l < 4; ++l) sx[ch * 16 + b * 4 + l] = s;
    }
  }
}

Q8Rows quantize_rows(const float* x, int64_t m, int64_t ldx, int64_t k, int64_t group, ThreadPool* pool) {
  static thread_local std::vector<int8_t> xq;
  static thread_local std::vector<float> sx, xsum;
  static thread_local std::vector<int32_t> gi, win;
  const int64_t chunks = chunks_of(k), groups = k / group;
  xq.resize(static_cast<size_t>(m * chunks * kChunk));
  sx.resize(static_cast<size_t>(m * chunks * 16));
  xsum.resize(static_cast<size_t>(m * groups));
  gi.resize(static_cast<size_t>(chunks * 16));
  win.resize(static_cast<size_t>(chunks));
  lane_groups(k, group, gi.data(), win.data());
  int8_t* q = xq.data();
  float *s = sx.data(), *xs = xsum.data();
  parallel_for(pool, m, 8, [=](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i)
      quantize_row(x + i * ldx, k, group, q + i * chunks * kChunk, s + i * chunks * 16, xs + i * groups);
  });
  return {xq.data(), sx.data(), xsum.data(), gi.data(), win.data(), m, chunks, groups};
}

void lane_groups(int64_t k, int64_t group, int32_t* gi, int32_t* win) {
  for (int64_t ch = 0; ch < chunks_of(k); ++ch) {
    const int64_t g0 = ch * kChunk / group;
    win[ch] = static_cast<int32_t>(g0 / 16 * 16);
    for (int l = 0; l < 16; ++l) {
      const int64_t col = ch * kChunk + 32 * (l / 4);
      gi[ch * 16 + l] = col < k ? static_cast<int32_t>(col / group - win[ch]) : 0;
    }
  }
}

}  // namespace q4i8
#endif

bool q4_int8_supported() {
  return cpu_matmul_features().avx512_vnni;
}

bool q4_int8_enabled() {
  return int8_on().load(std::memory_order_relaxed) && cpu_isa() == CpuIsa::kAvx512;
}

void set_q4_int8(bool on) {
  int8_on().store(on && q4_int8_supported(), std::memory_order_relaxed);
}

bool gemm_q4_decode_int8(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                         ThreadPool* pool) {
#ifdef MOERT_KERNELS_X86
  // a 128-column step must not straddle two 16-group windows of scales: groups of 32, 64 or 128k columns
  if (!q4_int8_supported() || w.type != DType::kQ4 || !q4i8::group_supported(w.group)) return false;
  const Q8Rows all = q4i8::quantize_rows(x, m, ldx, w.k, w.group, pool);
  for (int64_t i0 = 0; i0 < m; i0 += kQ4DecodeRows) {
    const Int8Args a{all.rows(i0, std::min(kQ4DecodeRows, m - i0)), &w, y + i0 * ldy, ldy};
    const Int8Args* ap = &a;
    const int64_t items = (w.n + kRowGrain8 - 1) / kRowGrain8;
    parallel_for(pool, items, 1, [ap](int64_t b, int64_t e, int) {
      int8_rows_any(*ap, b * kRowGrain8, std::min(ap->w->n, e * kRowGrain8));
    });
  }
  return true;
#else
  (void)x, (void)m, (void)ldx, (void)w, (void)y, (void)ldy, (void)pool;
  return false;
#endif
}

}  // namespace moert::kernels
