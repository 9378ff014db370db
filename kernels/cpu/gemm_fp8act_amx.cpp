// AMX-BF16 tiles for the FP8-weight GEMMs (see gemm_fp8act_amx.h). Tiles, all 16 rows x 64 bytes:
// accumulators C[i][j] = tmm(2 i + j) for weight rows 16 i .. and x rows 16 j .. (so C is y transposed), the
// panel A[i] = tmm(4 + i) (16 weight rows x 32 bf16, read in place from the panel's row-major codes: no
// transposed copy of the weights), one term of x B[j] = tmm(6 + j) (16 K pairs x 16 rows of bf16 pairs).
// Per 32 rows of x, 128-wide K block and panel: 4 steps of 32 K values, each loading the panel's two tiles
// once and then, per term, x's two tiles and 4 tdpbf16ps; then the 4 accumulators are stored and added into
// the totals times the block's scales. The panels are the inner loop so that one block of x's tiles (8 KiB a
// term) is read from L1 by each of them, and x streams from L2/L3 once per call, not per panel.
#include "gemm_fp8act_amx.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "amx_tiles.h"
#include "numeric_types.h"
#include "simd.h"

namespace moert::kernels::amx {

#if MOERT_AMX_BUILT

namespace {

#define MOERT_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))

constexpr int64_t kBlock = 128;

// The kernel's tile operations (amx_tiles.h, every tile 16 x 64 bytes): clear the accumulators; load the
// panel's two tiles; one term (load x's two tiles from b0, b1, then C[i][j] += A[i] B[j]); store the
// accumulators to blk[4][16][16].
struct Tiles : TileOps {
  static void begin() {
    static const TileConfig cfg = tile_config(64);
    configure(&cfg);
  }
  MOERT_AMX_TARGET static void term(const void* b0, const void* b1, int64_t bs) {
    load_b(b0, b1, bs);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
};

// A scalar model of them, for CPUs without AMX.
struct Model : TileModel {
  static void begin() {
    const TileConfig c = tile_config(64);
    configure(&c);
  }
  // A bf16 operand as fp32, denormals as zero (DAZ).
  static float bf16(const uint8_t* row, int i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    if ((h & 0x7f80) == 0) h &= 0x8000;
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  // A result flushed to a signed zero where denormal (FTZ).
  static float ftz(float v) { return std::fabs(v) < 0x1p-126f ? std::copysign(0.0f, v) : v; }
  // tdpbf16ps: C[m][n] += A[m].bf16[2k] * B[k].bf16[2n], then + A[m].bf16[2k + 1] * B[k].bf16[2n + 1], k
  // ascending; inputs DAZ, each result FTZ, round to nearest even (the SDM's definition).
  static void dp(int c, int a, int b) {
    Regs& g = regs();
    for (int m = 0; m < 16; ++m) {
      float acc[16];
      std::memcpy(acc, g.t[c][m], 64);
      for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 16; ++n) {
          acc[n] = ftz(acc[n] + ftz(bf16(g.t[a][m], 2 * k) * bf16(g.t[b][k], 2 * n)));
          acc[n] = ftz(acc[n] + ftz(bf16(g.t[a][m], 2 * k + 1) * bf16(g.t[b][k], 2 * n + 1)));
        }
      std::memcpy(g.t[c][m], acc, 64);
    }
  }
  static void term(const void* b0, const void* b1, int64_t bs) {
    load_b(b0, b1, bs);
    dp(0, 4, 6);
    dp(1, 4, 7);
    dp(2, 5, 6);
    dp(3, 5, 7);
  }
};

template <class Ops>
MOERT_AMX_TARGET void run(const TileX& x, const uint16_t* w, const float* ws, int np, int last_cols, float* y,
                          int64_t ldy) {
  assert(np >= 1 && np <= kMaxPanels && x.terms >= 1 && x.terms <= kMaxTerms);
  const int64_t Kp = x.Kp, blocks = Kp / kBlock, ksteps = Kp / 32, wld = panel_ld(Kp);
  const int64_t mp = (x.m + kRowStep - 1) / kRowStep * kRowStep;
  const int T = x.terms;
  const int64_t row_tiles = ksteps * T * kTileHalves;  // halves from one 16-row tile row to the next
  alignas(64) float blk[4][16][16];
  alignas(64) float tot[kMaxPanels][kRowStep][kRowStep];  // [panel][weight row][x row]
  Ops::begin();
  for (int64_t m0 = 0; m0 < mp; m0 += kRowStep) {
    for (int g = 0; g < np; ++g)
      for (int n = 0; n < kRowStep; ++n) {
        _mm512_store_ps(tot[g][n], _mm512_setzero_ps());
        _mm512_store_ps(tot[g][n] + 16, _mm512_setzero_ps());
      }
    const uint16_t* xb = x.tiles + (m0 / 16) * row_tiles;
    for (int64_t b = 0; b < blocks; ++b)
      for (int g = 0; g < np; ++g) {
        Ops::zero_acc();
        const uint16_t* wg = w + g * kRowStep * wld;
        for (int64_t k4 = 0; k4 < kBlock / 32; ++k4) {
          const int64_t j = b * (kBlock / 32) + k4;
          Ops::load_a(wg + j * 32, wg + 16 * wld + j * 32, wld * 2);
          for (int t = 0; t < T; ++t) {
            const uint16_t* bt = xb + (j * T + t) * kTileHalves;
            Ops::term(bt, bt + row_tiles, 64);
          }
        }
        Ops::store_acc(&blk[0][0][0]);
        const __m512 wsb = _mm512_set1_ps(ws[g * blocks + b]);
        for (int xt = 0; xt < 2; ++xt) {
          const __m512 sc =
              x.s ? _mm512_mul_ps(_mm512_loadu_ps(x.s + ((m0 / 16 + xt) * blocks + b) * 16), wsb) : wsb;
          for (int n = 0; n < kRowStep; ++n)
            _mm512_store_ps(tot[g][n] + 16 * xt,
                            _mm512_fmadd_ps(_mm512_load_ps(blk[2 * (n / 16) + xt][n % 16]), sc,
                                            _mm512_load_ps(tot[g][n] + 16 * xt)));
        }
      }
    const int64_t rows = std::min<int64_t>(kRowStep, x.m - m0);
    for (int g = 0; g < np; ++g) {
      const int cols = g + 1 == np ? last_cols : 32;
      for (int64_t i = 0; i < rows; ++i) {
        float* yr = y + (m0 + i) * ldy + 32 * g;
        for (int n = 0; n < cols; ++n) yr[n] = tot[g][n][i];
      }
    }
  }
  Ops::end();
}

}  // namespace

bool amx_built() {
  return true;
}

void panels(const TileX& x, const uint16_t* w, const float* ws, int npanels, int last_cols, float* y,
            int64_t ldy, bool emulate) {
  if (emulate)
    run<Model>(x, w, ws, npanels, last_cols, y, ldy);
  else
    run<Tiles>(x, w, ws, npanels, last_cols, y, ldy);
}

namespace {

// One fixed problem of `terms` terms (x scales with one term), 40 rows (a full and a padded row step), 3 K
// blocks, two panels (the second of 13 columns: a partial second column tile), tiles against the model.
bool self_check_terms(int terms) {
  const int64_t m = 40, mp = 64, Kp = 3 * kBlock, blocks = 3;
  const int np = 2, last = 13;
  std::mt19937 rng(20261201 + terms);
  // Positive values (no cancellation), so every output is checked to its own relative rounding: e4m3 codes,
  // or (three terms) bf16 values spread over a few binades, as split fp32 values are.
  auto code = [&] {
    uint8_t c;
    do c = static_cast<uint8_t>(rng() & 0x7f);
    while (c == 0x7f);
    return e4m3_to_bf16(c);
  };
  // Tile contents (x rows past m are zero, as the callers pad them; their outputs are not checked).
  std::vector<uint16_t> xt(static_cast<size_t>(mp * Kp * terms), 0);
  for (int64_t i = 0; i < mp / 16; ++i)
    for (int64_t j = 0; j < Kp / 32; ++j)
      for (int t = 0; t < terms; ++t)
        for (int64_t e = 0; e < kTileHalves; ++e)
          if (i * 16 + e % 32 / 2 < m)  // element e of the tile: K pair e / 32, x row e % 32 / 2
            xt[static_cast<size_t>(((i * (Kp / 32) + j) * terms + t) * kTileHalves + e)] =
                terms == 1 ? code() : static_cast<uint16_t>(0x3f00 + rng() % 0x100 - 0x80 * t);
  std::vector<float> s(static_cast<size_t>(mp * blocks), 0.0f), ws(static_cast<size_t>(np * blocks));
  for (auto& v : s) v = 0.001f * static_cast<float>(1 + rng() % 1000);
  std::vector<uint16_t> w(static_cast<size_t>(np * kRowStep * panel_ld(Kp)), 0);
  for (int64_t n = 0; n < (np - 1) * kRowStep + last; ++n)
    for (int64_t k = 0; k < Kp; ++k) w[n * panel_ld(Kp) + k] = code();
  for (auto& v : ws) v = 0.001f * static_cast<float>(1 + rng() % 1000);
  const TileX x{xt.data(), terms == 1 ? s.data() : nullptr, m, Kp, terms};
  const int64_t ldy = 32 * np;
  std::vector<float> got(static_cast<size_t>(m * ldy), 0.0f), want(got.size(), 0.0f);
  run<Tiles>(x, w.data(), ws.data(), np, last, got.data(), ldy);
  run<Model>(x, w.data(), ws.data(), np, last, want.data(), ldy);
  // The hardware may add a block's products in another order: fp32 rounding, far below 1e-4 relative; a
  // wrong layout or operand order is off by O(1).
  for (int64_t r = 0; r < m; ++r)
    for (int c = 0; c < 32 + last; ++c) {
      const float w = want[r * ldy + c];
      if (!(w > 0) || !(std::fabs(got[r * ldy + c] - w) <= 1e-4f * w)) return false;
    }
  return true;
}

}  // namespace

bool amx_self_check() {
  return self_check_terms(1) && self_check_terms(3);
}

#else  // no AMX in this build

bool amx_built() {
  return false;
}
void panels(const TileX&, const uint16_t*, const float*, int, int, float*, int64_t, bool) {}
bool amx_self_check() {
  return false;
}

#endif

}  // namespace moert::kernels::amx
