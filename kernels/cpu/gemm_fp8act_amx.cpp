// AMX tiles for gemm_xwt_fp8act (see gemm_fp8act_amx.h). Tiles, all 16 rows x 64 bytes: accumulators
// C[i][j] = tmm(2 i + j) for x rows 16 i .. and weight columns 16 j .., x's codes A[i] = tmm(4 + i) (16 rows
// x 32 bf16), the panel's codes B[j] = tmm(6 + j) (16 K pairs x 16 columns of bf16 pairs). Per 32 rows of x
// and 128-wide K block: 4 steps of 32 K values, each 4 loads and 4 tdpbf16ps; then the 4 accumulators are
// stored and added into the rows' totals with x's tile scale times W's block scale.
#include "gemm_fp8act_amx.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "amx_tiles.h"
#include "simd.h"

namespace moert::kernels::amx {

#if MOERT_AMX_BUILT

namespace {

#define MOERT_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))

constexpr int64_t kBlock = 128;

// The kernel's three tile operations (amx_tiles.h, every tile 16 x 64 bytes): clear the accumulators; one
// K step (load x's two tiles from a0, a1 and the panel's two from b0, b1, then C[i][j] += A[i] B[j]);
// store the accumulators to blk[4][16][16].
struct Tiles : TileOps {
  static void begin() {
    static const TileConfig cfg = tile_config(64);
    configure(&cfg);
  }
  MOERT_AMX_TARGET static void step(const void* a0, const void* a1, int64_t as, const void* b0,
                                    const void* b1, int64_t bs) {
    load(a0, a1, as, b0, b1, bs);
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
  static float bf16(const uint8_t* row, int i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  // tdpbf16ps: C[m][n] += A[m].bf16[2k] * B[k].bf16[2n], then + A[m].bf16[2k + 1] * B[k].bf16[2n + 1], k
  // ascending.
  static void dp(int c, int a, int b) {
    Regs& g = regs();
    for (int m = 0; m < 16; ++m) {
      float acc[16];
      std::memcpy(acc, g.t[c][m], 64);
      for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 16; ++n) {
          acc[n] += bf16(g.t[a][m], 2 * k) * bf16(g.t[b][k], 2 * n);
          acc[n] += bf16(g.t[a][m], 2 * k + 1) * bf16(g.t[b][k], 2 * n + 1);
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
MOERT_AMX_TARGET void run(const uint16_t* q, int64_t m, int64_t Kp, const float* s, const uint32_t* pk,
                          const float* ws, float* y, int64_t ldy, int ncols) {
  const int64_t blocks = Kp / kBlock, mp = (m + kRowStep - 1) / kRowStep * kRowStep;
  const int64_t qstride = Kp * 2, pstride = 32 * 4;  // bytes between tile rows
  alignas(64) float blk[4][16][16];
  alignas(64) float tot[kRowStep][32];
  const int c0 = std::min(ncols, 16), c1 = std::max(0, ncols - 16);
  const __mmask16 k0 = static_cast<__mmask16>(c0 >= 16 ? 0xffff : (1u << c0) - 1u),
                  k1 = static_cast<__mmask16>(c1 >= 16 ? 0xffff : (1u << c1) - 1u);
  Ops::begin();
  for (int64_t m0 = 0; m0 < mp; m0 += kRowStep) {
    for (int r = 0; r < kRowStep; ++r) {
      _mm512_store_ps(tot[r], _mm512_setzero_ps());
      _mm512_store_ps(tot[r] + 16, _mm512_setzero_ps());
    }
    for (int64_t b = 0; b < blocks; ++b) {
      Ops::zero_acc();
      for (int64_t k4 = 0; k4 < kBlock / 32; ++k4) {
        const uint16_t* a = q + m0 * Kp + b * kBlock + k4 * 32;
        const uint32_t* w = pk + (b * (kBlock / 2) + k4 * 16) * 32;
        Ops::step(a, a + 16 * Kp, qstride, w, w + 16, pstride);
      }
      Ops::store_acc(&blk[0][0][0]);
      for (int r = 0; r < kRowStep; ++r) {
        const __m512 sc = _mm512_set1_ps(s[(m0 + r) * blocks + b] * ws[b]);
        const int i = r / 16, rr = r % 16;
        _mm512_store_ps(tot[r], _mm512_fmadd_ps(_mm512_load_ps(blk[2 * i][rr]), sc, _mm512_load_ps(tot[r])));
        _mm512_store_ps(tot[r] + 16,
                        _mm512_fmadd_ps(_mm512_load_ps(blk[2 * i + 1][rr]), sc, _mm512_load_ps(tot[r] + 16)));
      }
    }
    const int64_t rows = std::min<int64_t>(kRowStep, m - m0);
    for (int64_t r = 0; r < rows; ++r) {
      _mm512_mask_storeu_ps(y + (m0 + r) * ldy, k0, _mm512_load_ps(tot[r]));
      if (c1 > 0) _mm512_mask_storeu_ps(y + (m0 + r) * ldy + 16, k1, _mm512_load_ps(tot[r] + 16));
    }
  }
  Ops::end();
}

// e4m3 code -> its value's bf16 bits (exact), for the self-check's data.
uint16_t e4m3_bf16(uint8_t c) {
  const int sign = c >> 7, e = (c >> 3) & 15, f = c & 7;
  float v = e ? std::ldexp(1.0f + f / 8.0f, e - 7) : std::ldexp(f / 8.0f, -6);
  if (e == 15 && f == 7) v = 0.0f;  // NaN code: not used as data
  if (sign) v = -v;
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

bool amx_built() {
  return true;
}

void panel(const uint16_t* q, int64_t m, int64_t Kp, const float* s, const uint32_t* pk, const float* ws,
           float* y, int64_t ldy, int ncols, bool emulate) {
  if (emulate)
    run<Model>(q, m, Kp, s, pk, ws, y, ldy, ncols);
  else
    run<Tiles>(q, m, Kp, s, pk, ws, y, ldy, ncols);
}

bool amx_self_check() {
  // 40 rows (a full and a padded row step), 3 K blocks, 29 columns (a partial second column tile).
  const int64_t m = 40, mp = 64, Kp = 3 * kBlock, blocks = 3;
  const int ncols = 29;
  std::mt19937 rng(20261201);
  std::vector<uint16_t> q(static_cast<size_t>(mp * Kp), 0);
  std::vector<float> s(static_cast<size_t>(mp * blocks), 0.0f), ws(blocks);
  std::vector<uint32_t> pk(static_cast<size_t>(Kp / 2 * 32));
  // Positive codes (no cancellation), so every output is checked to its own relative rounding.
  auto code = [&] {
    uint8_t c;
    do c = static_cast<uint8_t>(rng() & 0x7f);
    while (c == 0x7f);
    return c;
  };
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t k = 0; k < Kp; ++k) q[r * Kp + k] = e4m3_bf16(code());
    for (int64_t b = 0; b < blocks; ++b) s[r * blocks + b] = 0.001f * static_cast<float>(1 + rng() % 1000);
  }
  for (auto& v : pk) v = e4m3_bf16(code()) | static_cast<uint32_t>(e4m3_bf16(code())) << 16;
  for (auto& v : ws) v = 0.001f * static_cast<float>(1 + rng() % 1000);
  std::vector<float> got(static_cast<size_t>(m * 32), 0.0f), want(got.size(), 0.0f);
  run<Tiles>(q.data(), m, Kp, s.data(), pk.data(), ws.data(), got.data(), 32, ncols);
  run<Model>(q.data(), m, Kp, s.data(), pk.data(), ws.data(), want.data(), 32, ncols);
  // The hardware may add a block's products in another order: fp32 rounding, far below 1e-4 relative; a
  // wrong layout or operand order is off by O(1).
  for (int64_t r = 0; r < m; ++r)
    for (int c = 0; c < ncols; ++c) {
      const float w = want[r * 32 + c];
      if (!(w > 0) || !(std::fabs(got[r * 32 + c] - w) <= 1e-4f * w)) return false;
    }
  return true;
}

#else  // no AMX in this build

bool amx_built() {
  return false;
}
void panel(const uint16_t*, int64_t, int64_t, const float*, const uint32_t*, const float*, float*, int64_t,
           int, bool) {}
bool amx_self_check() {
  return false;
}

#endif

}  // namespace moert::kernels::amx
