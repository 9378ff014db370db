// x @ W^T for 4-bit weights (DType::kQ4: codes with an fp16 scale and offset per group of columns,
// see weight_ref.h). gemm_xwt and dequant_row route q4 weights here, so callers see one GEMM.
// Preconditions (the loader checks them): k and group are multiples of 32, k a multiple of group.
#pragma once
#include <cstdint>

#include "thread_pool.h"
#include "weight_ref.h"

namespace moert::kernels {

// Up to this many rows of x take the decode kernels; more take the prefill paths.
constexpr int64_t kQ4DecodeRows = 4;

// y[m, n] = x @ W^T. Which path:
//  - row_invariant (batch_invariant mode), any m: the fp32 panel path (256-row panels dequantised to fp32
//    and multiplied by gemm_xwt's fp32 path, whose row_invariant then holds for the whole product). No int8
//    path is ever taken there, so a row's bits do not depend on m or on the CPU's int8 units.
//  - m <= kQ4DecodeRows: the int8-activation decode kernel where q4_int8_enabled(), else the fp32 decode
//    kernel, which reads the packed codes and dequantises them in registers (AVX-512, AVX2 or portable, as
//    cpu_isa() says), summing code x activation per group and applying the group scale once per group, the
//    offsets through the per-group sums of x.
//  - m > kQ4DecodeRows: q4_prefill_path(): AMX-INT8 tiles, else the VNNI int8 prefill kernel, else (no
//    int8: MOERT_Q4_INT8=off, no VNNI, cpu_isa() below AVX-512) the fp32 panel path, the portable one.
void gemm_q4_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                 ThreadPool* pool, bool row_invariant);

// The prefill paths (gemm_q4_prefill.cpp). The int8 ones quantise x as the int8 decode kernel does (the
// same quantiser) and differ from it only in summation order (VNNI: not even that):
//  - kVnniInt8: AVX-512 VNNI, each 4 weight rows' codes unpacked once and multiplied against every row of x
//    in 4 x 4 tiles with the decode kernel's arithmetic per output, so a row's result is the same to the
//    bit at every m, decode sizes included;
//  - kAmxInt8 / kAmxInt8Model: tdpbusd on AMX tiles, or the same kernel on the tiles' scalar model
//    (gemm_q4_amx.h), 32 weight rows x 32 x rows per step, per-group int32 tile sums scaled into fp32
//    totals; a row's result does not depend on m either (but differs from VNNI's in fp32 rounding);
//  - kFp32Panel: the fp32 panel path above.
// q4_prefill_path(): kFp32Panel unless q4_int8_enabled(); then by amx_use() (gemm_fp8act.h, the switch
// the FP8 tiles use: MOERT_CPU_MATMUL=off gives kOff): kAuto -> kAmxInt8 where amx_int8_ready() (AMX-INT8,
// Linux's permission, a one-time self-check against the model), kModel -> kAmxInt8Model; else kVnniInt8.
enum class Q4PrefillPath { kFp32Panel, kVnniInt8, kAmxInt8Model, kAmxInt8 };
Q4PrefillPath q4_prefill_path();
const char* q4_prefill_path_name(Q4PrefillPath path);  // "fp32-panel", "vnni-int8", "amx-int8-model", ...
// At any m, the given path whatever the switches (tests, benchmarks); false (nothing written) where this
// CPU or build lacks it (VNNI for every int8 path, amx_int8_ready() for kAmxInt8) or the group size is not
// 32, 64 or a multiple of 128.
bool gemm_q4_prefill(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                     ThreadPool* pool, Q4PrefillPath path);
void gemm_q4_panel_fp32(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                        ThreadPool* pool, bool row_invariant);

// The int8-activation decode kernel (gemm_q4_int8.cpp, AVX-512 VNNI): x quantised to int8 per weight group
// (scale amax / 127), the codes dotted with it by vpdpbusd, the offsets applied through the group sums of
// the quantised x. Its only error against the fp32 kernel is x's rounding: |s xq - x| <= s / 2 per column.
// gemm_q4_xwt takes it at decode sizes, not row_invariant, when q4_int8_enabled(): where the CPU has
// AVX-512 VNNI and cpu_isa() is AVX-512, unless MOERT_Q4_INT8=off or set_q4_int8(false), which also turn
// off the int8 prefill paths.
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
