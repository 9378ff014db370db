// cuBLASLt FP8 GEMM with DeepSeek's block scaling (cuBLAS >= 12.9, Hopper): activations 1x128
// (CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, scales M-major [ceil(K/128), M]) times weights with 128x128
// blocks (CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, scales [ceil(N/128), ld % 4 == 0] as in the
// checkpoint), fp32 accumulation and fp32 output; and the plain BF16 GEMM (bf16 activations times bf16
// weights, fp32 accumulation, fp32 or bf16 output).
//
// cuBLASLt is column-major: y[m, n] row-major is D = [N, M] column-major, D = op(A) * op(B) with
// A = W ([K, N] column-major, ld = K, transposed) and B = xq ([K, M] column-major, ld = K): the "TN" layout
// FP8 requires. A's scales are the weight's blocks, B's the activations' vectors.
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include "cuda_kernels.h"

namespace moert::cuda {

struct LtGemm::Plans {
  struct Plan {
    bool supported = false;
    cublasLtMatmulAlgo_t algo{};
  };
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, uint32_t>, Plan> by_shape;
};

namespace {

struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  ~Descs() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// The alignment a pointer guarantees (a power of two, at most 256 bytes).
uint32_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

}  // namespace

LtGemm::LtGemm() {
  cublasLtHandle_t h = nullptr;
  if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) return;
  workspace_bytes_ = 32u << 20;
  if (cudaMalloc(&workspace_, workspace_bytes_) != cudaSuccess) {
    cublasLtDestroy(h);
    workspace_ = nullptr;
    return;
  }
  handle_ = h;
  plans_ = new Plans();
}

LtGemm::~LtGemm() {
  delete plans_;
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

bool LtGemm::fp8_block_scaled(const uint8_t* xq, const float* x_scales, int64_t m, const DevWeight& w,
                              float* y, int64_t ldy, cudaStream_t s, const char** err) {
  *err = nullptr;
  if (!handle_ || w.type != DType::kF8E4M3 || w.row0 % 128 != 0 || w.scale_ld % 4 != 0 || w.k % 16 != 0 ||
      w.ld % 16 != 0 || ldy % 4 != 0 || m <= 0)
    return false;
  const int64_t N = w.n, K = w.k;
  Descs d;
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  const float* a_scale = w.scale + (w.row0 / 128) * w.scale_ld;
  const void* a_scale_v = a_scale;
  const void* b_scale_v = x_scales;
  bool ok = cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) ==
                 CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)) ==
                 CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode,
                                            sizeof(a_mode)) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode,
                                            sizeof(b_mode)) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale_v,
                                            sizeof(a_scale_v)) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale_v,
                                            sizeof(b_scale_v)) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatrixLayoutCreate(&d.a, CUDA_R_8F_E4M3, K, N, w.ld) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatrixLayoutCreate(&d.b, CUDA_R_8F_E4M3, K, m, K) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatrixLayoutCreate(&d.d, CUDA_R_32F, N, m, ldy) == CUBLAS_STATUS_SUCCESS;
  if (!ok) return false;  // this cuBLASLt does not know the attributes: no block-scaled path

  return run(&d, m, N, K, ldy * 1000003 + w.ld, 0, w.data, xq, y, s, err);
}

bool LtGemm::bf16(const void* x, int64_t ldx, int64_t m, const DevWeight& w, void* y, int64_t ldy,
                  bool y_bf16, cudaStream_t s, const char** err) {
  *err = nullptr;
  if (!handle_ || w.type != DType::kBF16 || m <= 0 || w.n <= 0 || w.k <= 0) return false;
  const int64_t N = w.n, K = w.k;
  Descs d;
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  bool ok = cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) ==
                 CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)) ==
                 CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatrixLayoutCreate(&d.a, CUDA_R_16BF, K, N, w.ld) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatrixLayoutCreate(&d.b, CUDA_R_16BF, K, m, ldx) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cublasLtMatrixLayoutCreate(&d.d, y_bf16 ? CUDA_R_16BF : CUDA_R_32F, N, m, ldy) ==
                 CUBLAS_STATUS_SUCCESS;
  if (!ok) return false;
  // The plan key tells the two kinds and the output types apart (bits 27.. of the alignment word).
  return run(&d, m, N, K, (ldy * 1000003 + w.ld) * 1000003 + ldx, y_bf16 ? 2u : 1u, w.data, x, y, s, err);
}

bool LtGemm::run(const void* descs, int64_t m, int64_t n, int64_t k, int64_t strides, uint32_t kind,
                 const void* a, const void* b, void* y, cudaStream_t s, const char** err) {
  const Descs& d = *static_cast<const Descs*>(descs);
  Plans::Plan plan;
  // Heuristics assume 256-byte aligned operands unless told otherwise: tell them what these pointers give.
  const uint32_t al_a = alignment(a), al_b = alignment(b), al_d = alignment(y);
  const auto key = std::make_tuple(m, n, k, strides, al_a | (al_b << 9) | (al_d << 18) | (kind << 27));
  {
    std::lock_guard<std::mutex> lock(plans_->mu);
    auto it = plans_->by_shape.find(key);
    if (it != plans_->by_shape.end()) {
      plan = it->second;
    } else {
      cublasLtMatmulPreference_t pref = nullptr;
      int found = 0;
      cublasLtMatmulHeuristicResult_t res{};
      if (cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS) {
        size_t ws = workspace_bytes_;
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a,
                                             sizeof(al_a));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b,
                                             sizeof(al_b));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d,
                                             sizeof(al_d));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d,
                                             sizeof(al_d));
        if (cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), d.op, d.a, d.b, d.d, d.d,
                                           pref, 1, &res, &found) != CUBLAS_STATUS_SUCCESS)
          found = 0;
        cublasLtMatmulPreferenceDestroy(pref);
      }
      plan.supported = found > 0;
      if (plan.supported) plan.algo = res.algo;
      plans_->by_shape[key] = plan;
    }
  }
  if (!plan.supported) return false;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t st =
      cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), d.op, &alpha, a, d.a, b, d.b, &beta, y, d.d, y,
                     d.d, &plan.algo, workspace_, workspace_bytes_, s);
  if (st != CUBLAS_STATUS_SUCCESS) {
    *err = cublasLtGetStatusString(st);
    return false;
  }
  return true;
}

}  // namespace moert::cuda
