// What the two AMX kernels share (gemm_fp8act_amx.cpp: tdpbf16ps; gemm_q4_amx.cpp: tdpbusd): their one
// tile layout (tiles 0-3 the 2 x 2 accumulators of 16 rows x 16 32-bit sums, 4-5 two A tiles of 16 rows x
// ks bytes, 6-7 two B tiles of ks / 4 rows x 64 bytes) and the tile instructions that do not depend on the
// element type, on the real tiles (TileOps) and on a scalar model of them (TileModel: a thread's 8 tiles
// and their configuration, each instruction as the Intel SDM defines it). Each kernel adds its dot-product
// instruction (and the model's version of it) and runs one kernel over either. Internal to those files.
#pragma once
#include <cstdint>
#include <cstring>

#include "simd.h"

#if MOERT_AMX_BUILT
#include <immintrin.h>

namespace moert::kernels::amx {

#define MOERT_AMX_TILE_TARGET __attribute__((target("amx-tile")))

// ldtilecfg's 64-byte operand, palette 1, for A rows of ks bytes (ks = 64: every tile 16 x 64 bytes).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

inline TileConfig tile_config(int ks) {
  TileConfig c;
  for (int t = 0; t < 4; ++t) c.colsb[t] = 64, c.rows[t] = 16;                            // C: 16 x 16 dwords
  for (int t = 4; t < 6; ++t) c.colsb[t] = static_cast<uint16_t>(ks), c.rows[t] = 16;     // A: 16 x ks bytes
  for (int t = 6; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = static_cast<uint8_t>(ks / 4);  // B: ks / 4 x 64
  return c;
}

// The real tiles. (An instruction's tile number is part of its encoding: GCC's intrinsics take literals.)
struct TileOps {
  MOERT_AMX_TILE_TARGET static void configure(const TileConfig* c) {
    _tile_loadconfig(c);
    // GCC's tileloadd asm names no memory operand: every store to the tiles' sources must be done first...
    __asm__ volatile("" ::: "memory");
  }
  MOERT_AMX_TILE_TARGET static void end() {
    // ... and no store to them may move above the last tile load.
    __asm__ volatile("" ::: "memory");
    _tile_release();
  }
  MOERT_AMX_TILE_TARGET static void zero_acc() {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  // A[0..1] from a0, a1 (rows `as` bytes apart), B[0..1] from b0, b1 (`bs` apart).
  MOERT_AMX_TILE_TARGET static void load_a(const void* a0, const void* a1, int64_t as) {
    _tile_loadd(4, a0, as);
    _tile_loadd(5, a1, as);
  }
  MOERT_AMX_TILE_TARGET static void load_b(const void* b0, const void* b1, int64_t bs) {
    _tile_loadd(6, b0, bs);
    _tile_loadd(7, b1, bs);
  }
  MOERT_AMX_TILE_TARGET static void load(const void* a0, const void* a1, int64_t as, const void* b0,
                                         const void* b1, int64_t bs) {
    load_a(a0, a1, as);
    load_b(b0, b1, bs);
  }
  // The accumulators to blk[4][16][16] dwords: C[a][b] at blk[2 a + b].
  MOERT_AMX_TILE_TARGET static void store_acc(void* blk) {
    auto* p = static_cast<uint8_t*>(blk);
    _tile_stored(0, p, 64);
    _tile_stored(1, p + 1024, 64);
    _tile_stored(2, p + 2048, 64);
    _tile_stored(3, p + 3072, 64);
  }
};

// The same on the scalar model: tileloadd fills rows x colsb bytes and zeroes the rest of the tile;
// tilestored writes rows x colsb.
struct TileModel {
  struct Regs {
    alignas(64) uint8_t t[8][16][64];
    TileConfig cfg;
  };
  static Regs& regs() {
    static thread_local Regs r;
    return r;
  }
  static void configure(const TileConfig* c) { regs().cfg = *c; }
  static void end() {}
  static void zero(int t) { std::memset(regs().t[t], 0, sizeof(regs().t[t])); }
  static void load(int t, const void* base, int64_t stride) {
    Regs& g = regs();
    zero(t);
    for (int r = 0; r < g.cfg.rows[t]; ++r)
      std::memcpy(g.t[t][r], static_cast<const uint8_t*>(base) + r * stride, g.cfg.colsb[t]);
  }
  static void store(int t, void* base, int64_t stride) {
    Regs& g = regs();
    for (int r = 0; r < g.cfg.rows[t]; ++r)
      std::memcpy(static_cast<uint8_t*>(base) + r * stride, g.t[t][r], g.cfg.colsb[t]);
  }
  static void zero_acc() {
    for (int t = 0; t < 4; ++t) zero(t);
  }
  static void load_a(const void* a0, const void* a1, int64_t as) {
    load(4, a0, as);
    load(5, a1, as);
  }
  static void load_b(const void* b0, const void* b1, int64_t bs) {
    load(6, b0, bs);
    load(7, b1, bs);
  }
  static void load(const void* a0, const void* a1, int64_t as, const void* b0, const void* b1, int64_t bs) {
    load_a(a0, a1, as);
    load_b(b0, b1, bs);
  }
  static void store_acc(void* blk) {
    for (int t = 0; t < 4; ++t) store(t, static_cast<uint8_t*>(blk) + 1024 * t, 64);
  }
};

}  // namespace moert::kernels::amx

#endif  // MOERT_AMX_BUILT
