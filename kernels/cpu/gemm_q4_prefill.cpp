// The int8-activation q4 GEMM at prefill sizes (gemm_q4.h, gemm_q4_prefill): x quantised once per call by
// the decode kernel's quantiser (gemm_q4_int8.h), then either
//  - VNNI: per work item of 16 weight rows, their codes unpacked once (low and high nibbles as bytes, in
//    the quantised x's layout) with each lane's group scale, then x in blocks of 64 rows through the
//    item's four 4-row panels (a block read once per item), 4 x rows x 4 weight rows per tile: per 128
//    columns two vpdpbusd, a conversion and an FMA against d * s per (x row, weight row). The arithmetic per
//    output is the decode int8 kernel's, step for step, so a row's result is the same to the bit at any m,
//    through either kernel;
//  - AMX-INT8 (gemm_q4_amx.h): 32 weight rows' codes unpacked in column order, x's codes packed into
//    tdpbusd's B layout once per call, per-group int32 tile sums scaled into fp32 totals.
// Offsets (sum_g m_g S_g) as in the decode kernel. Threads split the weight rows.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu_features.h"
#include "gemm_fp8act.h"
#include "gemm_q4.h"
#include "gemm_q4_amx.h"
#include "gemm_q4_int8.h"
#include "numeric_types.h"
#include "scratch.h"
#include "simd.h"

namespace moert::kernels {
namespace {

#ifdef MOERT_KERNELS_X86

using q4i8::kChunk;
constexpr int kMR = 4;               // x rows per VNNI tile
constexpr int kNR = 4;               // weight rows per VNNI tile (and per unpacked panel)
constexpr int64_t kItemRows = 16;    // weight rows per work item
constexpr int kPanelSlot = 6;        // tls_scratch slot of the workers' unpacked panels
constexpr int64_t kXBlockRows = 64;  // x rows per pass over an item's panels

using q4i8::Q8Rows;  // x quantised for the whole call (gemm_q4_int8.h)

// Weight rows n .. n + nr unpacked: codes [nr][chunks * 128] (per chunk the 64 bytes' low nibbles, then
// their high nibbles: the quantised x's layout), d [nr][chunks * 16] (each lane's group scale, as the
// decode kernel permutes them).
MOERT_Q4_VNNI void unpack_vnni_panel(const WeightRef& w, const Q8Rows& q, int64_t n, int nr, uint8_t* codes,
                                     float* d) {
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const int64_t tail_bytes = (w.k - (q.chunks - 1) * kChunk) / 2;  // 16 .. 64
  const __mmask64 tail = tail_bytes >= 64 ? ~__mmask64{0} : ((__mmask64{1} << tail_bytes) - 1);
  for (int r = 0; r < nr; ++r) {
    const uint8_t* p = static_cast<const uint8_t*>(w.data) + (n + r) * (w.ld / 2);
    const uint16_t* sc = w.q4_scale + (n + r) * w.q4_ld;
    uint8_t* cr = codes + r * q.chunks * kChunk;
    float* dr = d + r * q.chunks * 16;
    for (int64_t ch = 0; ch < q.chunks; ++ch) {
      const __m512i v =
          _mm512_maskz_loadu_epi8(ch + 1 == q.chunks ? tail : ~__mmask64{0}, p + ch * (kChunk / 2));
      _mm512_storeu_si512(cr + ch * kChunk, _mm512_and_si512(v, nib));
      _mm512_storeu_si512(cr + ch * kChunk + 64, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib));
      const int64_t win = q.win[ch], gn = std::min<int64_t>(16, q.groups - win);
      const __m512 dv =
          _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << gn) - 1), sc + win));
      _mm512_storeu_ps(dr + ch * 16, _mm512_permutexvar_ps(_mm512_loadu_si512(q.gi + ch * 16), dv));
    }
  }
}

// A 4 x 4 tile's outputs, y = hsum(acc) + offsets(...) for each as the decode kernel computes them (the
// same additions in the same order), the 32 horizontal sums done 16 at a time by reduce16: lane 4 i + r is
// weight row r, x row i. The offsets' last groups % 16 groups: one fused multiply-add each, in order.
MOERT_Q4_VNNI __attribute__((always_inline)) inline void finish_4x4(const __m512 (&acc)[4][4],
                                                                    const Q8Rows& q, int64_t i0,
                                                                    const WeightRef& w, int64_t n, float* y,
                                                                    int64_t ldy) {
  const int64_t full = q.groups / 16 * 16;
  __m512 v[16], o[16];
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 4; ++i) {
      v[4 * r + i] = acc[r][i];
      o[4 * r + i] = q4i8::offsets_vector(w.q4_min + (n + r) * w.q4_ld, q.xsum + (i0 + i) * q.groups, full);
    }
  const __m512 sums = q4i8::reduce16(v);
  __m512 off = q4i8::reduce16(o);
  const __m512i row_of_lane = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  for (int64_t g = full; g < q.groups; ++g) {
    alignas(16) float mn[4], xs[4];
    for (int r = 0; r < 4; ++r) mn[r] = _cvtsh_ss(w.q4_min[(n + r) * w.q4_ld + g]);
    for (int i = 0; i < 4; ++i) xs[i] = q.xsum[(i0 + i) * q.groups + g];
    const __m512 mv = _mm512_broadcast_f32x4(_mm_load_ps(mn));  // lane 4 i + r: mn of row r
    const __m512 xv =
        _mm512_permutexvar_ps(row_of_lane, _mm512_zextps128_ps512(_mm_load_ps(xs)));  // of x row i
    off = _mm512_fmadd_ps(mv, xv, off);
  }
  alignas(64) float out[16];
  _mm512_store_ps(out, _mm512_add_ps(sums, off));
  for (int i = 0; i < 4; ++i) std::memcpy(y + (i0 + i) * ldy + n, out + 4 * i, 4 * sizeof(float));
}

// MR x rows from i0 against NR unpacked weight rows (weight row n of the output).
template <int MR, int NR>
MOERT_Q4_VNNI void vnni_tile(const Q8Rows& q, int64_t i0, const uint8_t* codes, const float* d,
                             const WeightRef& w, int64_t n, float* y, int64_t ldy) {
  const int64_t cs = q.chunks * kChunk, ds = q.chunks * 16;
  __m512 acc[NR][MR];
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < MR; ++i) acc[r][i] = _mm512_setzero_ps();
  const int8_t* xq = q.xq + i0 * cs;
  const float* sx = q.sx + i0 * ds;
  for (int64_t ch = 0; ch < q.chunks; ++ch) {
#pragma GCC unroll 8  // whole, so that the accumulators stay in registers
    for (int r = 0; r < NR; ++r) {
      const __m512i lo = _mm512_loadu_si512(codes + r * cs + ch * kChunk),
                    hi = _mm512_loadu_si512(codes + r * cs + ch * kChunk + 64);
      const __m512 dv = _mm512_loadu_ps(d + r * ds + ch * 16);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const int8_t* xi = xq + i * cs + ch * kChunk;
        const __m512i dot =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xi)), hi,
                                _mm512_loadu_si512(xi + 64));
        acc[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                    _mm512_mul_ps(dv, _mm512_loadu_ps(sx + i * ds + ch * 16)), acc[r][i]);
      }
    }
  }
  if constexpr (MR == 4 && NR == 4) {
    finish_4x4(acc, q, i0, w, n, y, ldy);
  } else {
    for (int r = 0; r < NR; ++r) {
      const uint16_t* mn = w.q4_min + (n + r) * w.q4_ld;
      for (int i = 0; i < MR; ++i)
        y[(i0 + i) * ldy + n + r] =
            q4i8::hsum(acc[r][i]) + q4i8::offsets(mn, q.xsum + (i0 + i) * q.groups, q.groups);
    }
  }
}

// The last m % kMR rows: the tile with that many rows.
template <int MR, int NR>
MOERT_Q4_VNNI void vnni_tail(int mr, const Q8Rows& q, int64_t i0, const uint8_t* codes, const float* d,
                             const WeightRef& w, int64_t n, float* y, int64_t ldy) {
  if constexpr (MR >= 1) {
    if (mr == MR) return vnni_tile<MR, NR>(q, i0, codes, d, w, n, y, ldy);
    vnni_tail<MR - 1, NR>(mr, q, i0, codes, d, w, n, y, ldy);
  }
}

// Rows i0 .. i1 of x against one unpacked panel.
template <int NR>
MOERT_Q4_VNNI void vnni_panel_rows(const Q8Rows& q, int64_t i0, int64_t i1, const uint8_t* codes,
                                   const float* d, const WeightRef& w, int64_t n, float* y, int64_t ldy) {
  int64_t i = i0;
  for (; i + kMR <= i1; i += kMR) vnni_tile<kMR, NR>(q, i, codes, d, w, n, y, ldy);
  if (i < i1) vnni_tail<kMR - 1, NR>(static_cast<int>(i1 - i), q, i, codes, d, w, n, y, ldy);
}

// Each work item unpacks its 16 weight rows once, then takes x in blocks of kXBlockRows rows through all four
// panels, so a block is read from memory once per item and stays in cache for the other three panels (for
// a long prompt x is megabytes: read once per panel, it would come from L3 or DRAM four times as often).
void prefill_vnni(const Q8Rows& q, const WeightRef& w, float* y, int64_t ldy, ThreadPool* pool) {
  const Q8Rows* qp = &q;
  const WeightRef* wp = &w;
  parallel_for(pool, (w.n + kItemRows - 1) / kItemRows, 1, [=](int64_t b, int64_t e, int) {
    const int64_t cs = qp->chunks * kChunk, ds = qp->chunks * 16, per = kNR * (cs / 4 + ds);
    constexpr int64_t kPanels = kItemRows / kNR;
    float* buf = tls_scratch(kPanelSlot, static_cast<size_t>(kPanels * per));
    for (int64_t n0 = b * kItemRows; n0 < std::min(wp->n, e * kItemRows); n0 += kItemRows) {
      int nr[kPanels] = {};
      for (int64_t p = 0; p < kPanels; ++p) {
        const int64_t n = n0 + p * kNR;
        if (n >= wp->n) break;
        nr[p] = static_cast<int>(std::min<int64_t>(kNR, wp->n - n));
        float* pb = buf + p * per;
        unpack_vnni_panel(*wp, *qp, n, nr[p], reinterpret_cast<uint8_t*>(pb), pb + kNR * cs / 4);
      }
      for (int64_t i0 = 0; i0 < qp->m; i0 += kXBlockRows) {
        const int64_t i1 = std::min(qp->m, i0 + kXBlockRows);
        for (int64_t p = 0; p < kPanels && nr[p] > 0; ++p) {
          const int64_t n = n0 + p * kNR;
          const uint8_t* codes = reinterpret_cast<const uint8_t*>(buf + p * per);
          const float* d = buf + p * per + kNR * cs / 4;
          if (nr[p] == kNR) {
            vnni_panel_rows<kNR>(*qp, i0, i1, codes, d, *wp, n, y, ldy);
          } else {
            for (int r = 0; r < nr[p]; ++r)
              vnni_panel_rows<1>(*qp, i0, i1, codes + r * cs, d + r * ds, *wp, n + r, y, ldy);
          }
        }
      }
    }
  });
}

#if MOERT_AMX_BUILT
// x's codes in tdpbusd's B layout (gemm_q4_amx.h), with its scales and S_g by 16-row tile; padded rows zero.
struct AmxX {
  const uint32_t* xb;
  const float *s, *xsum;
};
// Rows in parallel (each writes only its own lanes), padded rows zeroed by the same loop.
AmxX pack_amx_x(const Q8Rows& q, int64_t k, int64_t group, ThreadPool* pool) {
  static thread_local std::vector<uint32_t> xb;
  static thread_local std::vector<float> s, xsum;
  const int64_t mp = (q.m + 31) / 32 * 32, quads = k / 4;
  xb.resize(static_cast<size_t>(mp * quads));
  s.resize(static_cast<size_t>(mp * q.groups));
  xsum.resize(s.size());
  uint32_t* xbp = xb.data();
  float *sp = s.data(), *xsp = xsum.data();
  const Q8Rows* qp = &q;
  parallel_for(pool, mp, 8, [=](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t t = i / amx::kQ4XTile, l = i % amx::kQ4XTile, groups = qp->groups;
      uint32_t* bt = xbp + t * quads * 16 + l;
      if (i >= qp->m) {
        for (int64_t p = 0; p < quads; ++p) bt[p * 16] = 0;
        for (int64_t g = 0; g < groups; ++g)
          sp[(t * groups + g) * 16 + l] = xsp[(t * groups + g) * 16 + l] = 0.0f;
        continue;
      }
      const int8_t* xi = qp->xq + i * qp->chunks * kChunk;
      for (int64_t p = 0; p < quads; ++p)  // 4 columns from 4p on are 4 bytes in a row of the layout
        std::memcpy(bt + p * 16, xi + q4i8::layout_pos(4 * p), 4);
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t c = g * group;  // the group's first 32-column block: its lane 4 b of chunk c / 128
        sp[(t * groups + g) * 16 + l] =
            qp->sx[i * qp->chunks * 16 + (c / kChunk) * 16 + ((c % kChunk) / 32) * 4];
        xsp[(t * groups + g) * 16 + l] = qp->xsum[i * groups + g];
      }
    }
  });
  return {xb.data(), s.data(), xsum.data()};
}

// Weight rows n .. n + nr (nr <= 32) as the tile kernel's operands: codes [32][k] in column order, d and
// mn [groups][32] (zero past nr). The fp16 scales and offsets convert 16 groups at a time (vcvtph2ps, exact
// as f16_to_float) and scatter into their [group][row] places: a scalar conversion per group had cost as
// much as the tile products at an expert's few prefill rows.
MOERT_Q4_VNNI void unpack_amx_panel(const WeightRef& w, int64_t n, int nr, uint8_t* codes, float* d,
                                    float* mn) {
  const int64_t groups = w.k / w.group;
  const __m128i nib = _mm_set1_epi8(0x0f);
  const __m512i rows16 =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(amx::kQ4PanelRows));
  for (int r = nr; r < amx::kQ4PanelRows; ++r) {
    std::memset(codes + r * w.k, 0, static_cast<size_t>(w.k));
    for (int64_t g = 0; g < groups; ++g) d[g * amx::kQ4PanelRows + r] = mn[g * amx::kQ4PanelRows + r] = 0.0f;
  }
  for (int r = 0; r < nr; ++r) {
    const uint8_t* p = static_cast<const uint8_t*>(w.data) + (n + r) * (w.ld / 2);
    uint8_t* cr = codes + r * w.k;
    for (int64_t c = 0; c < w.k; c += 32) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + c / 2));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(cr + c), _mm_and_si128(v, nib));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(cr + c + 16), _mm_and_si128(_mm_srli_epi16(v, 4), nib));
    }
    const uint16_t* sr = w.q4_scale + (n + r) * w.q4_ld;
    const uint16_t* mr = w.q4_min + (n + r) * w.q4_ld;
    for (int64_t g = 0; g < groups; g += 16) {
      const __mmask16 k = static_cast<__mmask16>(groups - g >= 16 ? 0xffff : (1u << (groups - g)) - 1u);
      _mm512_mask_i32scatter_ps(d + g * amx::kQ4PanelRows + r, k, rows16,
                                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, sr + g)), 4);
      _mm512_mask_i32scatter_ps(mn + g * amx::kQ4PanelRows + r, k, rows16,
                                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, mr + g)), 4);
    }
  }
}

void prefill_amx(const Q8Rows& q, const WeightRef& w, float* y, int64_t ldy, ThreadPool* pool, bool emulate) {
  const AmxX ax = pack_amx_x(q, w.k, w.group, pool);
  const Q8Rows* qp = &q;
  const WeightRef* wp = &w;
  const AmxX* axp = &ax;
  parallel_for(pool, (w.n + amx::kQ4PanelRows - 1) / amx::kQ4PanelRows, 1, [=](int64_t b, int64_t e, int) {
    const int64_t groups = wp->k / wp->group, kp = amx::kQ4PanelRows;
    float* buf = tls_scratch(kPanelSlot, static_cast<size_t>(kp * wp->k / 4 + 2 * groups * kp));
    uint8_t* codes = reinterpret_cast<uint8_t*>(buf);
    float* d = buf + kp * wp->k / 4;
    float* mn = d + groups * kp;
    for (int64_t p = b; p < e; ++p) {
      const int64_t n = p * kp;
      const int nr = static_cast<int>(std::min<int64_t>(kp, wp->n - n));
      unpack_amx_panel(*wp, n, nr, codes, d, mn);
      const amx::Q4Operands op{codes, d, mn, axp->xb, axp->s, axp->xsum, qp->m, wp->k, wp->group};
      amx::q4_int8_panel(op, y + n, ldy, nr, emulate);
    }
  });
}
#endif
#endif

}  // namespace

Q4PrefillPath q4_prefill_path() {
  if (!q4_int8_enabled()) return Q4PrefillPath::kFp32Panel;
  switch (amx_use()) {
    case AmxUse::kModel:
#if MOERT_AMX_BUILT
      return Q4PrefillPath::kAmxInt8Model;
#else
      return Q4PrefillPath::kVnniInt8;
#endif
    case AmxUse::kAuto:
      return amx_int8_ready() ? Q4PrefillPath::kAmxInt8 : Q4PrefillPath::kVnniInt8;
    case AmxUse::kOff:
      break;
  }
  return Q4PrefillPath::kVnniInt8;
}

const char* q4_prefill_path_name(Q4PrefillPath path) {
  switch (path) {
    case Q4PrefillPath::kVnniInt8:
      return "vnni-int8";
    case Q4PrefillPath::kAmxInt8Model:
      return "amx-int8-model";
    case Q4PrefillPath::kAmxInt8:
      return "amx-int8";
    case Q4PrefillPath::kFp32Panel:
      break;
  }
  return "fp32-panel";
}

bool gemm_q4_prefill(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                     ThreadPool* pool, Q4PrefillPath path) {
  if (w.type != DType::kQ4) return false;
  if (path == Q4PrefillPath::kFp32Panel) {
    gemm_q4_panel_fp32(x, m, ldx, w, y, ldy, pool, false);
    return true;
  }
  if (m <= 0) return true;
#ifdef MOERT_KERNELS_X86
  if (!q4_int8_supported() || !q4i8::group_supported(w.group)) return false;
  if (path == Q4PrefillPath::kAmxInt8 && !amx_int8_ready()) return false;
#if !MOERT_AMX_BUILT
  if (path != Q4PrefillPath::kVnniInt8) return false;
#endif
  const Q8Rows q = q4i8::quantize_rows(x, m, ldx, w.k, w.group, pool);
#if MOERT_AMX_BUILT
  if (path != Q4PrefillPath::kVnniInt8) {
    prefill_amx(q, w, y, ldy, pool, path == Q4PrefillPath::kAmxInt8Model);
    return true;
  }
#endif
  prefill_vnni(q, w, y, ldy, pool);
  return true;
#else
  (void)x, (void)ldx, (void)y, (void)ldy, (void)pool;
  return false;
#endif
}

}  // namespace moert::kernels
