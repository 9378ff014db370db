// x @ W^T for 4-bit weights (DType::kQ4: codes with an fp16 scale and offset per group of columns,
// see weight_ref.h). gemm_xwt and dequant_row route q4 weights here, so callers see one GEMM.
// Preconditions (the loader checks them): k and group are multiples of 32, k a multiple of group.
#pragma once
#include <cstdint>

#include "thread_pool.h"
#include "weight_ref.h"

namespace moert::kernels {

// Up to this many rows of x take the decode kernel; more take the panel path.
constexpr int64_t kQ4DecodeRows = 4;

// y[m, n] = x @ W^T. Decode sizes (m <= kQ4DecodeRows, not row_invariant): the int8-activation kernel
// below where enabled, else the decode kernel, which reads the
// packed codes and dequantises them in registers (AVX-512, AVX2 or portable, as cpu_isa() says), summing
// code x activation per group and applying the group scale once per group, the offsets through the
// per-group sums of x. Larger m, or row_invariant: 256-row panels dequantised to fp32 and multiplied by
// gemm_xwt's fp32 path (whose row_invariant then holds for the whole product).
void gemm_q4_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                 ThreadPool* pool, bool row_invariant);

// The int8-activation decode kernel (gemm_q4_int8.cpp, AVX-512 VNNI): x quantised to int8 per weight group
// (scale amax / 127), the codes dotted with it by vpdpbusd, the offsets applied through the group sums of
// the quantised x. Its only error against the fp32 kernel is x's rounding: |s xq - x| <= s / 2 per column.
// gemm_q4_xwt takes it at decode sizes, not row_invariant, when q4_int8_enabled(): where the CPU has
// AVX-512 VNNI and cpu_isa() is AVX-512, unless MOERT_Q4_INT8=off or set_q4_int8(false). Row-invariant
// calls (batch_invariant) never take it, like the fp32 decode kernel, so a row's bits do not depend on m.
bool q4_int8_supported();
bool q4_int8_enabled();
void set_q4_int8(bool on);  // for tests and benchmarks; not thread-safe with kernels running
// At any m (the tests drive it directly); false (nothing written) where the CPU lacks VNNI or the group
// size is not 32, 64 or a multiple of 128.
bool gemm_q4_decode_int8(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                         ThreadPool* pool);

// The decode kernel at any m (the tests drive it directly, per instruction set).
void gemm_q4_decode(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                    ThreadPool* pool);

// Columns col0 .. col0 + count of `row` as fp32: d * q + m, exactly as the reference computes it.
void dequant_q4_row(const WeightRef& w, int64_t row, int64_t col0, int64_t count, float* out);

// One element as fp32 (the scalar reference).
float q4_weight_at(const WeightRef& w, int64_t row, int64_t col);

}  // namespace moert::kernels
