// The AMX micro-kernel of gemm_xwt_fp8act (gemm_fp8act.h): one 32-column weight panel against every row of
// x, with tdpbf16ps on 16 x 16 tiles (2 x 2 fp32 accumulators, 2 tiles of x's codes, 2 of the panel's), each
// 128-wide K block's tile sums stored and added into the row totals scaled by x's tile scale times W's block
// scale, as the AVX-512-BF16 kernel does. The same code runs on the tile instructions or on a scalar model of
// them (emulate): the model follows the instructions' definitions (Intel SDM: ldtilecfg, tileloadd,
// tdpbf16ps, tilestored), so tests check the kernel's layout and bookkeeping on CPUs without AMX, and the
// real tiles are checked against the model once before they are trusted (amx_self_check).
#pragma once
#include <cstdint>

namespace moert::kernels::amx {

// Rows per call step: x's codes must be padded with zero rows (and zero scales) to a multiple of this.
constexpr int64_t kRowStep = 32;

// y[r, 0 .. ncols) for r < m = sum over K blocks b of (x codes [r] . panel codes) * s[r * blocks + b] *
// ws[b]. q: x's e4m3 codes as bf16 [mp][Kp] (mp = m rounded up to kRowStep, padded rows zero), Kp a multiple
// of 128; s: [mp][Kp / 128]; pk: the panel [Kp / 2][32] 32-bit words (bf16 pairs of 32 weight rows); ws: the
// panel's block scales [Kp / 128]. The real tiles need amx_usable() (and the calling thread's tile
// permission, which amx_usable asks Linux for).
void panel(const uint16_t* q, int64_t m, int64_t Kp, const float* s, const uint32_t* pk, const float* ws,
           float* y, int64_t ldy, int ncols, bool emulate);

// Whether this build has the tile kernel at all (x86 with a compiler that knows AMX).
bool amx_built();

// Runs the real tiles once on a fixed problem against the model; true when they agree (to fp32 rounding of
// the block sums). Needs the CPU's AMX-BF16 and Linux's permission (callers check cpu_matmul_features()).
bool amx_self_check();

}  // namespace moert::kernels::amx
