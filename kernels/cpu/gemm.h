// Matrix products with the weight read in its stored type and dequantised on the fly (FP32 accumulation).
#pragma once
#include <cstdint>

#include "thread_pool.h"
#include "weight_ref.h"

namespace moert::kernels {

// y[m, n] = sum_k x[m, k] * W[n, k]   (x @ W^T, as nn.Linear). x row stride ldx, y row stride ldy.
// row_invariant: every row's result is the same bits whatever m (the packed-panel path at every m; by
// default m <= 4 takes a faster dot-product path that sums in another order). gemm_xw always is.
void gemm_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
              ThreadPool* pool, bool row_invariant = false);

// y[m, k] = sum_n x[m, n] * W[n, k]   (x @ W, the weight used transposed: MLA's absorbed W_UK).
void gemm_xw(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
             ThreadPool* pool);

// Plain, obviously right versions: the oracle for the tests.
void gemm_xwt_reference(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy);
void gemm_xw_reference(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy);

// One weight element as fp32 (dequantised).
float weight_at(const WeightRef& w, int64_t row, int64_t col);

}  // namespace moert::kernels
