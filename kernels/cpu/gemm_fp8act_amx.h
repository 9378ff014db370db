// The AMX-BF16 micro-kernel of the FP8-weight GEMMs (gemm_fp8act.h): a few 32-row weight panels against
// every row of x, with tdpbf16ps on 16 x 16 tiles (2 x 2 fp32 accumulators, 2 tiles of the panel, 2 of x),
// each 128-wide K block's tile sums stored and added into the row totals scaled by x's block scale (if any)
// times W's block scale. x's value is the sum of up to three bf16 terms (FP8 activations: one, the e4m3
// code; fp32 activations: three, whose sum is x exactly), each term's tiles multiplied by the same panel
// tiles. The same code runs on the tile instructions or on a scalar model of them (emulate): the model
// follows the instructions' definitions (Intel SDM: ldtilecfg, tileloadd, tdpbf16ps, tilestored), so tests
// check the kernel's layout and bookkeeping on CPUs without AMX, and the real tiles are checked against the
// model once before they are trusted (amx_self_check).
#pragma once
#include <cstdint>

namespace moert::kernels::amx {

// Rows per kernel step: x's tiles must hold m rows rounded up to this (padded rows zero, scales zero).
constexpr int64_t kRowStep = 32;
constexpr int kMaxTerms = 3;   // bf16 terms per x value
constexpr int kMaxPanels = 4;  // 32-column weight panels per call

// Halves (uint16) from one tile to the next in TileX: 16 rows x 64 bytes.
constexpr int64_t kTileHalves = 512;

// x as the tiles read it: for 16-row tile row i, 32-wide K step j and term t, the tile of 16 K pairs x 16 x
// rows of bf16 pairs (x[16 i + r][32 j + 2 p + h] at half 32 p + 2 r + h) at tiles + ((i * (Kp / 32) + j) *
// terms + t) * kTileHalves.
// The panels' row stride in halves: 64 bytes past Kp, so that a tile's 16 rows (Kp * 2 apart, often a
// multiple of 4 KiB) do not all fall into one L1 set.
constexpr int64_t panel_ld(int64_t Kp) {
  return Kp + 32;
}

struct TileX {
  const uint16_t* tiles;
  const float* s;  // x's block scales, s[(i * (Kp / 128) + b) * 16 + r] for row 16 i + r, or null: all 1
  int64_t m, Kp;   // rows (the tiles hold them rounded up to kRowStep, padded rows zero); K padded to 128
  int terms;       // 1 .. kMaxTerms
};

// y[r, 32 g + c] for r < m, g < npanels, c < 32 (c < last_cols in the last panel) = sum over K blocks b of
// (x[r] . panel g's row c over block b) * s[r][b] * ws[g * (Kp / 128) + b]. w: the panels' weight rows as
// bf16, row-major, row c of panel g at w + (32 g + c) * panel_ld(Kp) (rows past the weight's last zero). The
// real tiles need amx_ready() (gemm_fp8act.h: the CPU's AMX-BF16 and Linux's tile permission).
// Needs 1 <= npanels <= kMaxPanels and 1 <= x.terms <= kMaxTerms.
void panels(const TileX& x, const uint16_t* w, const float* ws, int npanels, int last_cols, float* y,
            int64_t ldy, bool emulate);

// Whether this build has the tile kernel at all (x86 with a compiler that knows AMX).
bool amx_built();

// Runs the real tiles once on fixed problems (one term with x scales, three terms without, two panels, a
// padded row step, a partial last panel) against the model; true when they agree to fp32 rounding of the
// block sums. Needs the CPU's AMX-BF16 and Linux's permission (callers check cpu_matmul_features()).
bool amx_self_check();

}  // namespace moert::kernels::amx
