// The AMX-INT8 micro-kernel of the q4 prefill GEMM (gemm_q4.h, gemm_q4_prefill.cpp): one panel of 32 weight
// rows against every row of x, with tdpbusd on 16 x 16 int32 tiles (2 x 2 accumulators, 2 tiles of the
// panel's 4-bit codes as unsigned bytes, 2 of x's int8 codes), each group's int32 tile sums stored and
// added into fp32 totals scaled by the weight's group scale d times x's group scale s; the offsets are added
// last through the group sums S of the quantised x. As gemm_fp8act_amx, one kernel runs either on the tile
// instructions or on a scalar model of them that follows the Intel SDM definitions (ldtilecfg, tileloadd,
// tdpbusd, tilestored), so tests check its layout and bookkeeping on CPUs without AMX, and the real tiles
// are trusted only after agreeing with the model once (q4_int8_self_check).
#pragma once
#include <cstdint>

namespace moert::kernels::amx {

constexpr int64_t kQ4PanelRows = 32;  // weight rows per panel (2 A tiles)
constexpr int64_t kQ4XTile = 16;      // x rows per B tile; x is padded with zero rows to a multiple of 32

// The operands, K in natural column order (k and group multiples of 32, k of group):
//  codes [32][k] bytes: the panel's codes 0..15 (rows past the panel's end zero);
//  d, mn [groups][32]: the panel's group scales and offsets as fp32 (zero past its end);
//  xb [mp / 16][k / 4][16] 32-bit words: x's int8 codes, tile t's word [p][l] = row 16 t + l's codes of
//    columns 4p .. 4p + 3 (tdpbusd's B layout: K groups of 4 bytes by column), mp = m rounded up to 32;
//  s, xsum [mp / 16][groups][16]: x's group scales and S_g, by tile, group and row (zero past m).
struct Q4Operands {
  const uint8_t* codes;
  const float *d, *mn;
  const uint32_t* xb;
  const float *s, *xsum;
  int64_t m, k, group;
};

// y[i, n] for i < m, n < nrows = sum_g d[g][n] s[g][i] (codes[n] . xq[i] over g) + sum_g mn[g][n] xsum[g][i].
// The real tiles need Linux's permission for the tile state (process-wide; amx_int8_ready asks for it).
void q4_int8_panel(const Q4Operands& op, float* y, int64_t ldy, int nrows, bool emulate);

// Runs the real tiles once on fixed problems (K steps of 32 and 64) against the model; true when they agree
// exactly (the int32 tile sums are exact and the fp32 scaling is the same code). Needs the CPU's AMX-INT8
// and Linux's permission (callers check cpu_matmul_features()).
bool q4_int8_self_check();

}  // namespace moert::kernels::amx
