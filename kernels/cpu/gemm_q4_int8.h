// The pieces the int8-activation q4 kernels share (gemm_q4_int8.cpp: decode; gemm_q4_prefill.cpp: VNNI and
// AMX prefill): x quantised per weight group, s_g = amax_g / 127, xq = round(x / s_g) in int8 (ties to even),
// S_g = s_g * sum(xq over g). One quantiser, so every int8 path sees the same xq, s and S for a row.
// x86 only (AVX-512 VNNI); callers check q4_int8_supported() first.
#pragma once
#include <cstdint>

namespace moert::kernels::q4i8 {

// Columns per step of the layout: 64 bytes of codes, 4 blocks of 32 columns.
constexpr int64_t kChunk = 128;

// Whether the lane-to-group tables below work for this group size: a 128-column step must not straddle
// two 16-group windows of scales, so groups of 32, 64 or a multiple of 128 columns.
inline bool group_supported(int64_t group) {
  return group > 0 && (kChunk % group == 0 || group % kChunk == 0) && group % 32 == 0;
}

inline int64_t chunks_of(int64_t k) {
  return (k + kChunk - 1) / kChunk;
}

// Where column c of a row sits in the quantised row's layout: per 128-column chunk, the 4 blocks' columns
// 0..15 (the codes' low nibbles of the chunk's 64 bytes), then their columns 16..31 (the high nibbles).
inline int64_t layout_pos(int64_t c) {
  const int64_t ch = c / kChunk, b = (c % kChunk) / 32, half = (c % 32) / 16;
  return ch * kChunk + half * 64 + b * 16 + c % 16;
}

// One row of x (k columns, groups of `group`): xq [chunks * 128] in the layout above (zero past k), sx
// [chunks * 16] (lane L of chunk ch: s_g of block L / 4's group, 0 past k), xsum [k / group] (S_g).
void quantize_row(const float* x, int64_t k, int64_t group, int8_t* xq, float* sx, float* xsum);

// Lane-to-group tables of a k x group layout: gi [chunks * 16] (lane L's group minus its 16-group window's
// first, 0 past k), win [chunks] (the window's first group).
void lane_groups(int64_t k, int64_t group, int32_t* gi, int32_t* win);

// sum_g mn[g] (fp16 offsets) * xsum[g], 16 groups per step then the rest, in one fixed order.
float offsets(const uint16_t* mn, const float* xsum, int64_t groups);

}  // namespace moert::kernels::q4i8
