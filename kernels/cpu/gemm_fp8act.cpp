// AVX-512-BF16 FP8 x FP8 GEMM (see gemm_fp8act.h). Layout: x's codes as bf16 pairs, [m][Kp / 2] 32-bit
// words (Kp = K rounded up to 128, zero padded), scales [m][Kp / 128]; a panel of 32 weight rows packed as
// [Kp / 2][32] words (word = the bf16 codes of w[n][2p], w[n][2p + 1]: a 32-bit transpose of the rows'
// bf16 codes). Micro-kernel: 6 rows of x x 32 weight rows, vdpbf16ps per K pair with x's word broadcast,
// 64 pairs per block, then total += block sum * (x scale * w scale). Threads split the panels.
#include "gemm_fp8act.h"

#include "cpu_features.h"
#include "gemm_fp8act_amx.h"
#include "gemm_q4_amx.h"
#include "numeric_types.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "scratch.h"
#include "simd.h"

#if defined(MOERT_KERNELS_X86)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moert::kernels {
namespace {

CpuMatmulFeatures detect() {
  CpuMatmulFeatures f;
#if defined(MOERT_KERNELS_X86)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    const bool avx512f = (b >> 16) & 1;
    f.avx512_vnni = avx512f && ((b >> 30) & 1) && ((c >> 11) & 1);  // with BW: the q4 int8 kernels use both
    f.amx_bf16 = (d >> 22) & 1;
    f.amx_tile = (d >> 24) & 1;
    f.amx_int8 = (d >> 25) & 1;
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = avx512f && ((a1 >> 5) & 1);
  }
  // The OS must have enabled the ZMM state (XCR0 bits 5-7) for AVX-512 at all.
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (!__get_cpuid(1, &a1, &b1, &c1, &d1) || !((c1 >> 27) & 1)) {
    f.avx512_bf16 = f.avx512_vnni = false;
  } else {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) f.avx512_bf16 = f.avx512_vnni = false;
  }
#endif
  return f;
}

// Off unless asked for: on the one CPU measured (a 2-core Xeon, Emerald Rapids, AMX not exposed by its
// hypervisor) vdpbf16ps gave 0.6-0.8x of the fp32 FMA kernel (bench/RESULTS.md), so it is not a default.
std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> v{env_is("MOERT_CPU_MATMUL", {"on", "1", "avx512-bf16"})};
  return v;
}

std::atomic<AmxUse>& amx_flag() {
  static std::atomic<AmxUse> v{env_is("MOERT_CPU_MATMUL", {"off", "0", "none"}) ? AmxUse::kOff
                                                                                : AmxUse::kAuto};
  return v;
}

enum class Path { kNone, kAvx512, kAmx, kAmxModel };

Path current_path() {
  const CpuMatmulFeatures& f = cpu_matmul_features();
  const AmxUse amx = amx_use();
  if (amx == AmxUse::kModel && f.avx512_bf16 && amx::amx_built()) return Path::kAmxModel;
  // An instruction set lowered below AVX-512 (MOERT_CPU_ISA, set_cpu_isa) turns the matrix paths off too:
  // their packing is AVX-512 code.
  if (cpu_isa() != CpuIsa::kAvx512) return Path::kNone;
  if (amx == AmxUse::kAuto && amx_ready()) return Path::kAmx;
  if (cpu_matmul_enabled() && f.avx512_bf16) return Path::kAvx512;
  return Path::kNone;
}

}  // namespace

const CpuMatmulFeatures& cpu_matmul_features() {
  static const CpuMatmulFeatures f = detect();
  return f;
}
bool cpu_matmul_enabled() {
  return enabled_flag().load(std::memory_order_relaxed);
}
void set_cpu_matmul(bool on) {
  enabled_flag().store(on, std::memory_order_relaxed);
}
void set_amx_use(AmxUse use) {
  amx_flag().store(use, std::memory_order_relaxed);
}
AmxUse amx_use() {
  return amx_flag().load(std::memory_order_relaxed);
}
namespace {
// Linux keeps the AMX tile data state off until the process asks (arch_prctl ARCH_REQ_XCOMP_PERM).
bool request_amx_permission() {
#if defined(MOERT_KERNELS_X86) && defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
// The tile state's permission, asked for once per process (whichever tile kernel comes first).
bool amx_permitted() {
  static const bool p = cpu_matmul_features().amx_tile && amx::amx_built() && request_amx_permission();
  return p;
}
// The guard of every tile kernel: the CPU's features for it, the permission, then the kernel's own
// self-check against its scalar model (each decided once, by the caller's static).
enum class AmxState { kUnusable, kSelfCheckFailed, kReady };
AmxState amx_guard(bool features, bool (*self_check)()) {
  if (!features || !amx_permitted()) return AmxState::kUnusable;
  return self_check() ? AmxState::kReady : AmxState::kSelfCheckFailed;
}
AmxState amx_state() {  // AMX-BF16: the FP8-activation GEMM (its packing needs AVX-512-BF16)
  static const AmxState s =
      amx_guard(cpu_matmul_features().amx_bf16 && cpu_matmul_features().avx512_bf16, amx::amx_self_check);
  return s;
}
AmxState amx_int8_state() {  // AMX-INT8: the q4 prefill GEMM (its quantiser and packing need AVX-512 VNNI)
  static const AmxState s =
      amx_guard(cpu_matmul_features().amx_int8 && cpu_matmul_features().avx512_vnni, amx::q4_int8_self_check);
  return s;
}
}  // namespace

bool amx_ready() {
  return amx_state() == AmxState::kReady;
}
bool amx_self_check_failed() {
  return amx_state() == AmxState::kSelfCheckFailed;
}
bool amx_int8_ready() {
  return amx_int8_state() == AmxState::kReady;
}
bool amx_int8_self_check_failed() {
  return amx_int8_state() == AmxState::kSelfCheckFailed;
}
const char* cpu_matmul_path() {
  switch (current_path()) {
    case Path::kAmx:
      return "amx-bf16";
    case Path::kAmxModel:
      return "amx-model";
    case Path::kAvx512:
      return "avx512-bf16";
    case Path::kNone:
      break;
  }
  return "none";
}

#if defined(MOERT_KERNELS_X86)
#define MOERT_BF16_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

namespace {

constexpr int64_t kPanel = 32, kMR = 6, kBlock = 128;

// e4m3 codes -> their values as fp32 (exact), 16 at a time (the fp16 trick of the AVX-512 kernels).
MOERT_BF16_TARGET inline __m512 e4m3_values(__m128i b) {
  __m256i w = _mm256_cvtepi8_epi16(b);
  w = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16(static_cast<short>(0xBFFF)));
  return _mm512_mul_ps(_mm512_cvtph_ps(w), _mm512_set1_ps(256.0f));
}

// v (already divided by the tile scale) rounded to e4m3 (nearest even, saturating at 448), as fp32.
MOERT_BF16_TARGET inline __m512 round_e4m3(__m512 v) {
  const __m512 a = _mm512_abs_ps(v);
  const __m512i ua = _mm512_castps_si512(a);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(ua, 20), _mm512_set1_epi32(1));
  __m512i rn = _mm512_add_epi32(_mm512_add_epi32(ua, _mm512_set1_epi32(0x7ffff)), odd);
  rn = _mm512_and_si512(rn, _mm512_set1_epi32(static_cast<int>(0xfff00000u)));
  const __m512 rnorm = _mm512_min_ps(_mm512_castsi512_ps(rn), _mm512_set1_ps(448.0f));
  const __m512 rsub = _mm512_mul_ps(_mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(512.0f)),
                                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                    _mm512_set1_ps(1.0f / 512.0f));
  const __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.015625f), _CMP_LT_OQ);
  __m512 r = _mm512_mask_mov_ps(rnorm, small, rsub);
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), a);
  return _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(r),
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int>(0x80000000u)))));
}

// 16 fp32 values that are exact in bf16 -> 16 bf16 (truncation is exact here).
MOERT_BF16_TARGET inline __m256i to_bf16(__m512 v) {
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16));
}

// Where row r's 16 values from K column k (a multiple of 16) go, as bf16, and its block scales: x's codes
// row-major [m][Kp] with scales [m][Kp / 128] (the AVX-512-BF16 kernel's operands), or one 16-row tile row
// of the tiles' x (rows r0 .. r0 + 16), term t's rows row-major [16][Kp] at q + 16 t Kp before they are
// transposed into tiles, its scales in amx::TileX's layout.
struct RowMajor {
  uint16_t* q;
  float* s;
  int64_t Kp;
  uint16_t* at(int64_t r, int64_t k, int) const { return q + r * Kp + k; }
  float& scale(int64_t r, int64_t b) const { return s[r * (Kp / kBlock) + b]; }
};
struct TileRow {
  uint16_t* q;
  float* s;  // the whole of x's scales
  int64_t Kp, r0;
  uint16_t* at(int64_t r, int64_t k, int t) const { return q + (16 * t + r - r0) * Kp + k; }
  float& scale(int64_t r, int64_t b) const { return s[(r / 16 * (Kp / kBlock) + b) * 16 + r % 16]; }
};

// Quantises x rows [m0, m1) into bf16 codes (at `out`) and scales s [m][Kp / 128], as act_quant.
template <class Out>
MOERT_BF16_TARGET void quantise_rows(const float* x, int64_t m0, int64_t m1, int64_t ldx, int64_t K,
                                     int64_t Kp, const Out& out) {
  const int64_t kb = Kp / kBlock;
  for (int64_t r = m0; r < m1; ++r)
    for (int64_t b = 0; b < kb; ++b) {
      const int64_t c0 = b * kBlock, n = std::max<int64_t>(0, std::min<int64_t>(kBlock, K - c0));
      const float* xr = x + r * ldx + c0;
      __m512 am = _mm512_setzero_ps();
      for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1u);
        am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_maskz_loadu_ps(mk, xr + i)));
      }
      const float sc = _mm512_reduce_max_ps(am) / 448.0f;
      out.scale(r, b) = sc;
      const __m512 sv = _mm512_set1_ps(sc == 0.0f ? 1.0f : sc);
      for (int64_t i = 0; i < kBlock; i += 16) {
        const int64_t left = n - i;
        const __mmask16 mk = static_cast<__mmask16>(left >= 16 ? 0xffff : left <= 0 ? 0 : (1u << left) - 1u);
        __m512 v = round_e4m3(_mm512_div_ps(_mm512_maskz_loadu_ps(mk, xr + i), sv));
        if (sc == 0.0f) v = _mm512_setzero_ps();
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.at(r, c0 + i, 0)), to_bf16(v));
      }
    }
}

// Splits x rows [m0, m1) into three bf16 terms (at `out`, terms 0-2): each the top 8 significant bits of
// what the terms before it left (truncation, so the remainders are exact in fp32 and the three hold all 24
// bits while the last stays a normal number: |x| >= 2^-100 or so; below, the tiles flush what is lost
// anyway). A non-finite value is its own first term (NaN kept NaN) with zero remainders, so it reaches y as
// the fp32 product would. Columns K .. Kp are zero.
MOERT_BF16_TARGET void split_rows(const float* x, int64_t m0, int64_t m1, int64_t ldx, int64_t K, int64_t Kp,
                                  const TileRow& out) {
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const __m512i exp = _mm512_set1_epi32(0x7f800000);
  for (int64_t r = m0; r < m1; ++r)
    for (int64_t k = 0; k < Kp; k += 16) {
      const int64_t left = K - k;
      const __mmask16 mk = static_cast<__mmask16>(left >= 16 ? 0xffff : left <= 0 ? 0 : (1u << left) - 1u);
      const __m512 v = _mm512_maskz_loadu_ps(mk, x + r * ldx + k);
      const __m512i vi = _mm512_castps_si512(v);
      const __mmask16 finite = _mm512_cmpneq_epi32_mask(_mm512_and_si512(vi, exp), exp);
      const __mmask16 nan =
          static_cast<__mmask16>(~finite & _mm512_test_epi32_mask(vi, _mm512_set1_epi32(0x007fffff)));
      // non-finite: the value itself, a NaN's quiet bit set (a payload only in the low half stays NaN)
      const __m512i h =
          _mm512_and_si512(_mm512_mask_or_epi32(vi, nan, vi, _mm512_set1_epi32(0x00400000)), hi);
      const __m512 r1 = _mm512_maskz_sub_ps(finite, v, _mm512_castsi512_ps(h));
      const __m512i mi = _mm512_and_si512(_mm512_castps_si512(r1), hi);
      const __m512 r2 = _mm512_sub_ps(r1, _mm512_castsi512_ps(mi));
      const __m512i lo = _mm512_and_si512(_mm512_castps_si512(r2), hi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.at(r, k, 0)),
                          _mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.at(r, k, 1)),
                          _mm512_cvtepi32_epi16(_mm512_srli_epi32(mi, 16)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.at(r, k, 2)),
                          _mm512_cvtepi32_epi16(_mm512_srli_epi32(lo, 16)));
    }
}

// dst[c * ldd + r] = src[r * lds + c] for a 16 x 16 block of 32-bit words.
MOERT_BF16_TARGET inline void transpose16(const uint32_t* src, int64_t lds, uint32_t* dst, int64_t ldd) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i ab_lo = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44),
                  ab_hi = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xEE);
    const __m512i cd_lo = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44),
                  cd_hi = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xEE);
    _mm512_storeu_si512(dst + c * ldd, _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88));
    _mm512_storeu_si512(dst + (4 + c) * ldd, _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xDD));
    _mm512_storeu_si512(dst + (8 + c) * ldd, _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88));
    _mm512_storeu_si512(dst + (12 + c) * ldd, _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xDD));
  }
}

// Weight rows [r0, r0 + rows) (rows <= 32) as bf16 codes, packed [Kp / 2][32] words.
MOERT_BF16_TARGET void pack_panel(const WeightRef& w, int64_t r0, int64_t rows, int64_t Kp, uint32_t* pk) {
  const int64_t K = w.k;
  uint16_t* buf = reinterpret_cast<uint16_t*>(tls_scratch(5, static_cast<size_t>(kPanel * Kp / 2)));
  for (int64_t r = 0; r < kPanel; ++r) {
    uint16_t* br = buf + r * Kp;
    if (r >= rows) {
      std::memset(br, 0, Kp * 2);
      continue;
    }
    const uint8_t* p = static_cast<const uint8_t*>(w.data) + (r0 + r) * w.ld;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(br + k),
                          to_bf16(e4m3_values(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k)))));
    if (k < K)
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(br + k),
          to_bf16(e4m3_values(_mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << (K - k)) - 1u), p + k))));
    for (k = (K + 15) / 16 * 16; k < Kp; k += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(br + k), _mm256_setzero_si256());
  }
  const uint32_t* words = reinterpret_cast<const uint32_t*>(buf);
  const int64_t W = Kp / 2;
  for (int64_t rb = 0; rb < kPanel; rb += 16)
    for (int64_t p = 0; p < W; p += 16) transpose16(words + rb * W + p, W, pk + p * kPanel + rb, kPanel);
}

// y[m0 .. m0 + MR, 0 .. ncols) = sum over blocks of (sum of the block's products) * xs[m][b] * ws[b].
template <int MR>
MOERT_BF16_TARGET __attribute__((noinline)) void tile(const uint32_t* __restrict xq, int64_t ldq,
                                                      const float* __restrict xs, int64_t lds,
                                                      const uint32_t* __restrict pk,
                                                      const float* __restrict ws, int64_t blocks,
                                                      float* __restrict y, int64_t ldy, int ncols) {
  __m512 tot[MR][2];
  for (int m = 0; m < MR; ++m) tot[m][0] = tot[m][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 acc[MR][2];
    for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
    const uint32_t* pb = pk + b * (kBlock / 2) * kPanel;
    for (int64_t p = 0; p < kBlock / 2; ++p) {
      const __m512bh w0 = (__m512bh)_mm512_loadu_si512(pb + p * kPanel);
      const __m512bh w1 = (__m512bh)_mm512_loadu_si512(pb + p * kPanel + 16);
#pragma GCC unroll 6
      for (int m = 0; m < MR; ++m) {
        const __m512bh xb = (__m512bh)_mm512_set1_epi32(static_cast<int>(xq[m * ldq + b * (kBlock / 2) + p]));
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], xb, w0);
        acc[m][1] = _mm512_dpbf16_ps(acc[m][1], xb, w1);
      }
    }
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      const __m512 sc = _mm512_set1_ps(xs[m * lds + b] * ws[b]);
      tot[m][0] = _mm512_fmadd_ps(acc[m][0], sc, tot[m][0]);
      tot[m][1] = _mm512_fmadd_ps(acc[m][1], sc, tot[m][1]);
    }
  }
  const int c0 = std::min(ncols, 16), c1 = std::max(0, ncols - 16);
  const __mmask16 k0 = static_cast<__mmask16>(c0 >= 16 ? 0xffff : (1u << c0) - 1u),
                  k1 = static_cast<__mmask16>(c1 >= 16 ? 0xffff : (1u << c1) - 1u);
  for (int m = 0; m < MR; ++m) {
    _mm512_mask_storeu_ps(y + m * ldy, k0, tot[m][0]);
    if (c1 > 0) _mm512_mask_storeu_ps(y + m * ldy + 16, k1, tot[m][1]);
  }
}

template <int MR>
MOERT_BF16_TARGET void tile_rec(int mr, const uint32_t* xq, int64_t ldq, const float* xs, int64_t lds,
                                const uint32_t* pk, const float* ws, int64_t blocks, float* y, int64_t ldy,
                                int ncols) {
  if constexpr (MR >= 1) {
    if (mr == MR)
      tile<MR>(xq, ldq, xs, lds, pk, ws, blocks, y, ldy, ncols);
    else
      tile_rec<MR - 1>(mr, xq, ldq, xs, lds, pk, ws, blocks, y, ldy, ncols);
  }
}

// The block scales ws[Kp / 128] of the 32-row panel at weight row r0 (one 128-row scale block: w.row0 and
// r0 are multiples of 32).
void panel_scales(const WeightRef& w, int64_t r0, int64_t Kp, float* ws) {
  const float* srow = w.scale + ((w.row0 + r0) >> 7) * w.scale_ld;
  for (int64_t b = 0; b < Kp / kBlock; ++b) ws[b] = srow[b];
}

// The AVX-512-BF16 kernel over one panel.
struct Ctx {
  const uint16_t* q;  // [m][Kp]
  const float* s;
  int64_t m, Kp;
  const WeightRef* w;
  float* y;
  int64_t ldy;
};

MOERT_BF16_TARGET void panel_task(const Ctx& c, int64_t p) {
  const WeightRef& w = *c.w;
  const int64_t r0 = p * kPanel, rows = std::min<int64_t>(kPanel, w.n - r0), blocks = c.Kp / kBlock;
  uint32_t* pk = reinterpret_cast<uint32_t*>(tls_scratch(4, static_cast<size_t>(kPanel * c.Kp / 2)));
  float* ws = tls_scratch(6, static_cast<size_t>(blocks));
  pack_panel(w, r0, rows, c.Kp, pk);
  panel_scales(w, r0, c.Kp, ws);
  const int64_t ldq = c.Kp / 2;
  const uint32_t* xq = reinterpret_cast<const uint32_t*>(c.q);
  for (int64_t m0 = 0; m0 < c.m; m0 += kMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR, c.m - m0));
    tile_rec<kMR>(mr, xq + m0 * ldq, ldq, c.s + m0 * blocks, blocks, pk, ws, blocks, c.y + m0 * c.ldy + r0,
                  c.ldy, static_cast<int>(rows));
  }
}

// e4m3 code magnitudes (7 bits) -> bf16 bits (exact; the NaN code to a NaN), as four 32-word tables.
struct E4m3Bf16Table {
  alignas(64) uint16_t v[128];
  E4m3Bf16Table() {
    for (int c = 0; c < 128; ++c) v[c] = e4m3_to_bf16(static_cast<uint8_t>(c));
  }
};

// Weight rows [r0, r0 + rows) as bf16 codes, row-major [32][ld] (zero past K and past `rows`): 32 codes by
// two two-table lookups (vpermt2w: codes 0-63 and 64-127 of the magnitude), a blend and the sign moved up.
MOERT_BF16_TARGET void panel_rows_bf16(const WeightRef& w, int64_t r0, int64_t rows, int64_t Kp, int64_t ld,
                                       uint16_t* out) {
  static const E4m3Bf16Table table;
  const __m512i t0 = _mm512_load_si512(table.v), t1 = _mm512_load_si512(table.v + 32),
                t2 = _mm512_load_si512(table.v + 64), t3 = _mm512_load_si512(table.v + 96);
  const __m512i sign = _mm512_set1_epi16(static_cast<short>(0x8000)), bit6 = _mm512_set1_epi16(0x40);
  const int64_t K = w.k;
  for (int64_t r = 0; r < kPanel; ++r) {
    uint16_t* o = out + r * ld;
    if (r >= rows) {
      std::memset(o, 0, static_cast<size_t>(Kp) * 2);
      continue;
    }
    const uint8_t* p = static_cast<const uint8_t*>(w.data) + (r0 + r) * w.ld;
    for (int64_t k = 0; k < Kp; k += 32) {
      const int64_t left = K - k;
      const __mmask32 mk = left >= 32 ? ~__mmask32{0} : left <= 0 ? 0 : (__mmask32{1} << left) - 1;
      const __m512i c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mk, p + k));
      const __m512i mag =
          _mm512_mask_blend_epi16(_mm512_test_epi16_mask(c, bit6), _mm512_permutex2var_epi16(t0, c, t1),
                                  _mm512_permutex2var_epi16(t2, c, t3));
      const __m512i v = _mm512_or_si512(mag, _mm512_and_si512(_mm512_slli_epi16(c, 8), sign));
      _mm512_storeu_si512(o + k, v);
    }
  }
}

// x quantised or split for one call, in the calling thread's buffers, kept for its next call (the pool
// threads' scratch is for the panels): one pair for every path and mode, bounded by the prefill chunk's
// rows.
struct XBuffers {
  std::vector<uint16_t> q;
  std::vector<float> s;
};
XBuffers& x_buffers() {
  static thread_local XBuffers b;
  return b;
}

// The tiles over `group` panels a task (amx::panels), x already in their layout.
struct TileCtx {
  amx::TileX x;
  const WeightRef* w;
  float* y;
  int64_t ldy;
  int group;
  bool model;
};

MOERT_BF16_TARGET void tile_task(const TileCtx& c, int64_t t) {
  const WeightRef& w = *c.w;
  const int64_t Kp = c.x.Kp, blocks = Kp / kBlock;
  const int64_t p0 = t * c.group, np = std::min<int64_t>(c.group, (w.n + kPanel - 1) / kPanel - p0);
  const int64_t ld = amx::panel_ld(Kp);
  uint16_t* wb = reinterpret_cast<uint16_t*>(tls_scratch(4, static_cast<size_t>(np * kPanel * ld / 2)));
  float* ws = tls_scratch(6, static_cast<size_t>(np * blocks));
  for (int64_t g = 0; g < np; ++g) {
    const int64_t r0 = (p0 + g) * kPanel;
    panel_rows_bf16(w, r0, std::min<int64_t>(kPanel, w.n - r0), Kp, ld, wb + g * kPanel * ld);
    panel_scales(w, r0, Kp, ws + g * blocks);
  }
  const int last = static_cast<int>(std::min<int64_t>(kPanel, w.n - (p0 + np - 1) * kPanel));
  amx::panels(c.x, wb, ws, static_cast<int>(np), last, c.y + p0 * kPanel, c.ldy, c.model);
}

// Both tile GEMMs: x (m rows) into the tiles' layout, one 16-row tile row at a time: `fill(r0, r1, out)`
// writes rows [r0, r1) row-major (and their scales), zero rows pad to 16, and each 16 x 32 block of a term
// is transposed into its tile (K pairs x rows). Then tasks of up to amx::kMaxPanels panels: as many as keep
// a task's bf16 panels (64 * Kp bytes each) within about 1 MiB of L2 beside x's stream, fewer where that
// leaves under two tasks per thread.
template <class Fill>
MOERT_BF16_TARGET void tile_gemm(int terms, bool with_scales, int64_t m, const WeightRef& w, float* y,
                                 int64_t ldy, ThreadPool* pool, bool model, const Fill& fill) {
  const int64_t Kp = (w.k + kBlock - 1) / kBlock * kBlock, blocks = Kp / kBlock, ksteps = Kp / 32;
  const int64_t mp = (m + amx::kRowStep - 1) / amx::kRowStep * amx::kRowStep;
  XBuffers& xb = x_buffers();  // x's tiles (terms * 2 bytes per value) and scales
  xb.q.resize(static_cast<size_t>(mp * Kp * terms));
  xb.s.assign(with_scales ? static_cast<size_t>(mp * blocks) : 0, 0.0f);
  uint16_t* tiles = xb.q.data();
  float* s = xb.s.data();
  parallel_for(pool, mp / 16, 1, [&](int64_t b, int64_t e, int) {
    uint16_t* rm = reinterpret_cast<uint16_t*>(tls_scratch(7, static_cast<size_t>(16 * Kp * terms / 2)));
    for (int64_t i = b; i < e; ++i) {
      const int64_t r0 = 16 * i, r1 = std::clamp<int64_t>(m, r0, r0 + 16);  // r1 = r0: padding only
      for (int t = 0; t < terms; ++t)
        for (int64_t r = r1 - r0; r < 16; ++r) std::memset(rm + (16 * t + r) * Kp, 0, Kp * 2);
      if (r1 > r0) fill(r0, r1, TileRow{rm, s, Kp, r0});
      for (int64_t j = 0; j < ksteps; ++j)
        for (int t = 0; t < terms; ++t)
          transpose16(reinterpret_cast<const uint32_t*>(rm + 16 * t * Kp + 32 * j), Kp / 2,
                      reinterpret_cast<uint32_t*>(tiles + ((i * ksteps + j) * terms + t) * amx::kTileHalves),
                      16);
    }
  });
  const int64_t panels = (w.n + kPanel - 1) / kPanel;
  const int threads = pool ? pool->size() : 1;
  int group = static_cast<int>(std::clamp<int64_t>((int64_t{1} << 20) / (64 * Kp), 1, amx::kMaxPanels));
  while (group > 1 && (panels + group - 1) / group < 2 * threads) --group;
  const TileCtx c{amx::TileX{tiles, with_scales ? s : nullptr, m, Kp, terms}, &w, y, ldy, group, model};
  const TileCtx* cp = &c;
  parallel_for(pool, (panels + group - 1) / group, 1, [cp](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) tile_task(*cp, t);
  });
}

bool fp8_weight_on_grid(const WeightRef& w, int64_t m) {
  return w.type == DType::kF8E4M3 && w.row0 % kPanel == 0 && m > 0 && w.n > 0 && w.k > 0;
}

}  // namespace

bool gemm_xwt_fp8act(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                     ThreadPool* pool) {
  const Path path = current_path();
  if (path == Path::kNone || !fp8_weight_on_grid(w, m)) return false;
  const int64_t K = w.k, Kp = (K + kBlock - 1) / kBlock * kBlock, blocks = Kp / kBlock;
  if (path == Path::kAmx || path == Path::kAmxModel) {
    tile_gemm(1, true, m, w, y, ldy, pool, path == Path::kAmxModel,
              [=](int64_t b, int64_t e, const TileRow& out) { quantise_rows(x, b, e, ldx, K, Kp, out); });
    return true;
  }
  XBuffers& xb = x_buffers();
  xb.q.resize(static_cast<size_t>(m * Kp));
  xb.s.resize(static_cast<size_t>(m * blocks));
  const RowMajor q{xb.q.data(), xb.s.data(), Kp};
  parallel_for(pool, m, 16, [=](int64_t b, int64_t e, int) { quantise_rows(x, b, e, ldx, K, Kp, q); });
  const Ctx c{q.q, q.s, m, Kp, &w, y, ldy};
  const Ctx* cp = &c;
  parallel_for(pool, (w.n + kPanel - 1) / kPanel, 1, [cp](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) panel_task(*cp, p);
  });
  return true;
}

bool gemm_xwt_amx(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                  ThreadPool* pool) {
  const Path path = current_path();
  if ((path != Path::kAmx && path != Path::kAmxModel) || !fp8_weight_on_grid(w, m)) return false;
  const int64_t K = w.k, Kp = (K + kBlock - 1) / kBlock * kBlock;
  tile_gemm(3, false, m, w, y, ldy, pool, path == Path::kAmxModel,
            [=](int64_t b, int64_t e, const TileRow& out) { split_rows(x, b, e, ldx, K, Kp, out); });
  return true;
}

#else
bool gemm_xwt_fp8act(const float*, int64_t, int64_t, const WeightRef&, float*, int64_t, ThreadPool*) {
  return false;
}
bool gemm_xwt_amx(const float*, int64_t, int64_t, const WeightRef&, float*, int64_t, ThreadPool*) {
  return false;
}
#endif

}  // namespace moert::kernels
