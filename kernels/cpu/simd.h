// Internal: the vectorised implementations, one namespace per instruction set (simd_avx512, simd_avx2),
// compiled from simd_impl.inc with per-function target attributes. The public functions dispatch on
// cpu_isa(); the portable versions live in the public .cpp files.
#pragma once
#include <cstdint>

#include "attention.h"
#include "thread_pool.h"
#include "weight_ref.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MOERT_KERNELS_X86 1
#endif
// Compilers that know the AMX intrinsics: the tile kernels (gemm_fp8act_amx, gemm_q4_amx) are built.
#if defined(MOERT_KERNELS_X86) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define MOERT_AMX_BUILT 1
#endif

namespace moert::kernels {

#define MOERT_SIMD_DECLS                                                                                   \
  void dequant_row(const WeightRef& w, int64_t row, int64_t col0, int64_t count, float* out);              \
  void gemm_xwt(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,         \
                ThreadPool* pool, bool row_invariant);                                                     \
  void gemm_xw(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,          \
               ThreadPool* pool);                                                                          \
  void attention_expanded(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,        \
                          int64_t ldv, const ExpandedSeq* seqs, int64_t nseq, int64_t heads, int64_t dqk,  \
                          int64_t dv, const int32_t* q_pos, float scale, float* out, int64_t ldo,          \
                          ThreadPool* pool);                                                               \
  void attention_latent(const float* q_lat, int64_t ldql, const float* q_rope, int64_t ldqr,               \
                        int64_t rope_stride, int64_t t, const PagedRows* caches, const int32_t* row_cache, \
                        int64_t lat, int64_t rope, int64_t heads, const int32_t* q_pos, float scale,       \
                        float* out, int64_t ldo, ThreadPool* pool, bool split_keys);                       \
  void rmsnorm_rows(const float* x, int64_t rows, int64_t ldx, int64_t d, const float* w, float eps,       \
                    float* y, int64_t ldy);                                                                \
  void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows, int64_t cols,  \
                float* out, int64_t ldo);                                                                  \
  void axpy(int64_t n, float a, const float* x, float* y);                                                 \
  void add_inplace(int64_t n, const float* x, float* y);                                                   \
  void act_quant_dequant(float* x, int64_t rows, int64_t ldx, int64_t cols);                               \
  void exp_inplace(float* x, int64_t n);

#ifdef MOERT_KERNELS_X86
namespace simd_avx512 {
MOERT_SIMD_DECLS
}
namespace simd_avx2 {
MOERT_SIMD_DECLS
}
#endif

}  // namespace moert::kernels
