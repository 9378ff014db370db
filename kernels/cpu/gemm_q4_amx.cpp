// AMX-INT8 tiles for the q4 prefill GEMM (see gemm_q4_amx.h). Tiles: accumulators C[a][b] = tmm(2 a + b)
// (16 x 16 int32: weight rows 16 a .., x rows 16 b ..), the panel's codes A[a] = tmm(4 + a) (16 rows x K
// unsigned bytes), x's codes B[b] = tmm(6 + b) (K / 4 rows of 16 x 4 signed bytes). tdpbusd multiplies
// unsigned by signed bytes, which is why the codes (0..15) are A and x (-127..127) is B.
//
// K per tile op: min(group, 64). An op must stay inside one group, since each group's int32 sum gets its
// own scale d * s: groups of 32 take K = 32 (A tiles 16 x 32 bytes, B tiles 8 rows), half the depth a tile
// op can do; covering two groups with K = 64 would need each accumulator's other half of the operands
// zeroed, the same multiply-adds for twice the tile loads. Groups of 64 or more take K = 64, group / 64 ops
// per group sum. Per 32 x rows and group: zero the 4 accumulators, the group's K steps (4 loads and 4
// tdpbusd each), store the 4 accumulators, and add them into the fp32 totals times d * s.
#include "gemm_q4_amx.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "amx_tiles.h"
#include "simd.h"

namespace moert::kernels::amx {

#if MOERT_AMX_BUILT

namespace {

#define MOERT_AMX_INT8_TARGET \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")))

// The kernel's tile operations (amx_tiles.h): configure for K steps of ks bytes; clear the accumulators;
// one K step (A[0..1] from a0, a1, B[0..1] from b0, b1, then C[a][b] += A[a] B[b]); store the
// accumulators to blk[4][16][16].
struct Tiles : TileOps {
  static void begin(int ks) {
    static const TileConfig c32 = tile_config(32), c64 = tile_config(64);
    configure(ks == 32 ? &c32 : &c64);
  }
  MOERT_AMX_INT8_TARGET static void step(const void* a0, const void* a1, int64_t as, const void* b0,
                                         const void* b1, int64_t bs) {
    load(a0, a1, as, b0, b1, bs);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
};

// A scalar model of them.
struct Model : TileModel {
  static void begin(int ks) {
    const TileConfig c = tile_config(ks);
    configure(&c);
  }
  // tdpbusd: for m < rows(C), k < colsb(A) / 4, n < colsb(C) / 4: C[m].dword[n] += sum over j < 4 of
  // ZEXT(A[m].byte[4 k + j]) * SEXT(B[k].byte[4 n + j]), in int32 (wrapping).
  static void dp(int c, int a, int b) {
    Regs& g = regs();
    for (int m = 0; m < g.cfg.rows[c]; ++m) {
      int32_t acc[16];
      std::memcpy(acc, g.t[c][m], 64);
      for (int k = 0; k < g.cfg.colsb[a] / 4; ++k)
        for (int n = 0; n < g.cfg.colsb[c] / 4; ++n) {
          uint32_t sum = static_cast<uint32_t>(acc[n]);
          for (int j = 0; j < 4; ++j)
            sum += static_cast<uint32_t>(static_cast<int32_t>(g.t[a][m][4 * k + j]) *
                                         static_cast<int32_t>(static_cast<int8_t>(g.t[b][k][4 * n + j])));
          acc[n] = static_cast<int32_t>(sum);
        }
      std::memcpy(g.t[c][m], acc, 64);
    }
  }
  static void step(const void* a0, const void* a1, int64_t as, const void* b0, const void* b1, int64_t bs) {
    load(a0, a1, as, b0, b1, bs);
    dp(0, 4, 6);
    dp(1, 4, 7);
    dp(2, 5, 6);
    dp(3, 5, 7);
  }
};

template <class Ops>
MOERT_AMX_INT8_TARGET void run(const Q4Operands& op, float* y, int64_t ldy, int nrows) {
  const int64_t groups = op.k / op.group, ks = std::min<int64_t>(op.group, 64), steps = op.group / ks;
  const int64_t mp = (op.m + 31) / 32 * 32, quads = op.k / 4;
  alignas(64) int32_t blk[4][16][16];
  alignas(64) float tot[kQ4PanelRows][32];  // [weight row][x row]
  Ops::begin(static_cast<int>(ks));
  for (int64_t m0 = 0; m0 < mp; m0 += 32) {
    const int64_t t0 = m0 / kQ4XTile;
    for (auto& row : tot) {
      _mm512_store_ps(row, _mm512_setzero_ps());
      _mm512_store_ps(row + 16, _mm512_setzero_ps());
    }
    for (int64_t g = 0; g < groups; ++g) {
      Ops::zero_acc();
      for (int64_t st = 0; st < steps; ++st) {
        const int64_t c = g * op.group + st * ks;
        const uint32_t* b = op.xb + (t0 * quads + c / 4) * 16;
        Ops::step(op.codes + c, op.codes + 16 * op.k + c, op.k, b, b + quads * 16, 64);
      }
      Ops::store_acc(&blk[0][0][0]);
      for (int xt = 0; xt < 2; ++xt) {
        const __m512 sv = _mm512_loadu_ps(op.s + ((t0 + xt) * groups + g) * 16);
        for (int n = 0; n < kQ4PanelRows; ++n) {
          const __m512 ds = _mm512_mul_ps(_mm512_set1_ps(op.d[g * kQ4PanelRows + n]), sv);
          const __m512 sum = _mm512_cvtepi32_ps(_mm512_load_si512(blk[2 * (n / 16) + xt][n % 16]));
          _mm512_store_ps(tot[n] + 16 * xt, _mm512_fmadd_ps(sum, ds, _mm512_load_ps(tot[n] + 16 * xt)));
        }
      }
    }
    for (int64_t g = 0; g < groups; ++g)  // the offsets: sum_g m_g * S_g
      for (int xt = 0; xt < 2; ++xt) {
        const __m512 xs = _mm512_loadu_ps(op.xsum + ((t0 + xt) * groups + g) * 16);
        for (int n = 0; n < kQ4PanelRows; ++n)
          _mm512_store_ps(tot[n] + 16 * xt, _mm512_fmadd_ps(_mm512_set1_ps(op.mn[g * kQ4PanelRows + n]), xs,
                                                            _mm512_load_ps(tot[n] + 16 * xt)));
      }
    const int64_t rows = std::min<int64_t>(32, op.m - m0);
    for (int64_t i = 0; i < rows; ++i)
      for (int n = 0; n < nrows; ++n) y[(m0 + i) * ldy + n] = tot[n][i];
  }
  Ops::end();
}

// One fixed problem: m = 40 (a full and a padded 32-row step), k = 256, the given group, 29 weight rows.
bool self_check_group(int64_t group) {
  const int64_t m = 40, mp = 64, k = 256, groups = k / group;
  const int nrows = 29;
  std::mt19937 rng(20261201 + static_cast<unsigned>(group));
  std::vector<uint8_t> codes(static_cast<size_t>(kQ4PanelRows * k), 0);
  std::vector<float> d(static_cast<size_t>(groups * kQ4PanelRows), 0.0f), mn(d.size(), 0.0f);
  std::vector<uint32_t> xb(static_cast<size_t>(mp * k / 4), 0);
  std::vector<float> s(static_cast<size_t>(mp * groups), 0.0f), xsum(s.size(), 0.0f);
  for (int r = 0; r < nrows; ++r) {
    for (int64_t c = 0; c < k; ++c) codes[r * k + c] = static_cast<uint8_t>(rng() & 15);
    for (int64_t g = 0; g < groups; ++g) {
      d[g * kQ4PanelRows + r] = 0.001f * static_cast<float>(1 + rng() % 1000);
      mn[g * kQ4PanelRows + r] = -0.001f * static_cast<float>(rng() % 1000);
    }
  }
  for (int64_t i = 0; i < m; ++i) {
    const int64_t t = i / kQ4XTile, l = i % kQ4XTile;
    for (int64_t p = 0; p < k / 4; ++p) {
      uint32_t word = 0;
      for (int j = 0; j < 4; ++j)
        word |= static_cast<uint32_t>(static_cast<uint8_t>(rng() % 255 - 127)) << 8 * j;
      xb[(t * (k / 4) + p) * 16 + l] = word;
    }
    for (int64_t g = 0; g < groups; ++g) {
      s[(t * groups + g) * 16 + l] = 0.001f * static_cast<float>(1 + rng() % 1000);
      xsum[(t * groups + g) * 16 + l] = 0.01f * static_cast<float>(static_cast<int>(rng() % 2001) - 1000);
    }
  }
  const Q4Operands op{codes.data(), d.data(), mn.data(), xb.data(), s.data(), xsum.data(), m, k, group};
  std::vector<float> got(static_cast<size_t>(m * 32), -1.0f), want(got.size(), -1.0f);
  run<Tiles>(op, got.data(), 32, nrows);
  run<Model>(op, want.data(), 32, nrows);
  // The int32 tile sums are exact and the fp32 scaling after them is the same code: equal to the bit. A
  // wrong configuration, layout or operand order is off by O(1).
  return got == want;
}

}  // namespace

void q4_int8_panel(const Q4Operands& op, float* y, int64_t ldy, int nrows, bool emulate) {
  if (emulate)
    run<Model>(op, y, ldy, nrows);
  else
    run<Tiles>(op, y, ldy, nrows);
}

bool q4_int8_self_check() {
  return self_check_group(32) && self_check_group(128);  // K steps of 32 and of 64
}

#else  // no AMX in this build

void q4_int8_panel(const Q4Operands&, float*, int64_t, int, bool) {}
bool q4_int8_self_check() {
  return false;
}

#endif

}  // namespace moert::kernels::amx
