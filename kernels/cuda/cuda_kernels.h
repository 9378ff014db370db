// CUDA launchers: framework-free (raw device pointers, sizes, strides in elements, a stream), each
// returning the launch status. Semantics mirror kernels/cpu one for one; the CPU versions are the oracle.
// This header names CUDA types (cudaStream_t, cudaError_t) and is included only by the CUDA backend.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "common/dtype.h"
#include "common/routing_params.h"

namespace moert::cuda {

// A weight matrix [n, k] (row-major, row stride ld) of type `type` (F32, BF16, F16 or F8E4M3); FP8 carries
// fp32 block scales [ceil((row0 + n) / 128), scale_ld] (multiply to dequantise), row0 being this view's first
// row in the grid.
struct DevWeight {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n = 0, k = 0, ld = 0;
  const float* scale = nullptr;
  int64_t scale_ld = 0, row0 = 0;
};

// An activation matrix in device memory: fp32, or bf16 (rounded to nearest even when written, widened to
// fp32 when read: every kernel's math and accumulation is fp32), row stride ld in elements. An input the
// kernel only reads is passed the same way (data is not written through).
struct DevAct {
  void* data = nullptr;
  int64_t ld = 0;
  bool bf16 = false;
};

// ---- memory / layout ops (memory_ops.cu)
// out[i, :] = dequant(w[ids ? ids[i] : i, col0 : col0 + cols]) in out's type; invalid ids give NaN rows. With
// w an activation (F32 or BF16 "weight" view) this is also the gather and the fp32 <-> bf16 conversion.
cudaError_t dequant_rows(const DevWeight& w, const int32_t* ids, int64_t rows, int64_t col0, int64_t cols,
                         const DevAct& out, cudaStream_t s);
// k [s, heads*(nope+rope)], v [s, heads*vdim] from kvb [s, heads*(nope+vdim)] and k_rope [s, rope]; the four
// share kvb's type.
cudaError_t mla_expand_kv(const DevAct& kvb, const DevAct& k_rope, int64_t s_rows, int64_t heads,
                          int64_t nope, int64_t rope, int64_t vdim, const DevAct& k, const DevAct& v,
                          cudaStream_t s);
// One layer of the paged latent cache: the row of slot q (= page * page_rows + r) is at element
// (q / page_rows) * page_stride + (q % page_rows) * width of base: fp32, or bf16 (rounded to nearest even
// when written, read back in fp32).
struct DevPool {
  void* base = nullptr;
  bool bf16 = false;
  int64_t page_rows = 0, page_stride = 0, width = 0;
};
// A batch's paged-KV table (device): sequence s owns pages[indptr[s] .. indptr[s + 1]).
struct DevPagedKv {
  const int32_t* indptr = nullptr;
  const int32_t* pages = nullptr;
};
// rows [n, width] -> the cache slots slots[0 .. n); out[j] = the row at slots[j] (any of the four
// combinations of the rows' and the pool's types).
cudaError_t cache_write(const DevAct& rows, int64_t n, const DevPool& c, const int32_t* slots,
                        cudaStream_t s);
cudaError_t cache_gather(const DevPool& c, const int32_t* slots, int64_t n, const DevAct& out,
                         cudaStream_t s);

// ---- element-wise (elementwise.cu)
// gate, up and out share one type; add's x and y each have their own.
cudaError_t silu_mul(const DevAct& gate, const DevAct& up, int64_t rows, int64_t cols, const DevAct& out,
                     cudaStream_t s);
cudaError_t add_inplace(const DevAct& x, int64_t rows, int64_t cols, const DevAct& y, cudaStream_t s);

// ---- norm + rope (norm_rope.cu)
// x and y each in their own type (in place only in one type).
cudaError_t rmsnorm(const DevAct& x, int64_t rows, int64_t d, const void* w, DType wtype, float eps,
                    const DevAct& y, cudaStream_t s);
cudaError_t rope_interleaved(const DevAct& x, int64_t rows, int64_t heads, int64_t head_stride, int64_t dim,
                             const int32_t* positions, const float* inv_freq, float attention_factor,
                             cudaStream_t s);

// ---- activation quantisation (act_quant.cu): per row, per 128-column tile, scale = amax / 448.
// q: e4m3 bytes [rows, cols] (row stride ldq); scales[t * scale_ld + r] (tile-major: the M-major layout
// cuBLASLt's VEC128_32F mode reads, scale_ld = rows).
// x fp32 or bf16 (the tiles' amax and scales computed from its values widened to fp32).
cudaError_t act_quant(const DevAct& x, int64_t rows, int64_t cols, uint8_t* q, int64_t ldq, float* scales,
                      int64_t scale_ld, cudaStream_t s);
// The round trip x' = e4m3(x / s) * s of `segs` column segments of `width` values (segment g of row r starts
// at x + r*ldx + g*seg_stride; tiles start at each segment's beginning), packed into out [rows, segs*width]
// (fp32 always: e4m3 times an fp32 scale is not a bf16 value in general).
cudaError_t act_quant_dequant(const DevAct& x, int64_t rows, int64_t segs, int64_t seg_stride, int64_t width,
                              float* out, int64_t ldo, cudaStream_t s);

// ---- fp32-accumulating GEMMs with the weight dequantised on the fly (gemm_simt.cu)
// Batched over b < batch: x_b = x + b*x_bs, weight rows offset by b*w_row_bs, y_b = y + b*y_bs.
// transposed = true : y[m, j] = sum_i x[m, i] * W[j, i]   (x @ W^T, W is [N, K])
// transposed = false: y[m, j] = sum_i x[m, i] * W[i, j]   (x @ W,   W is [K, N])
// x and y fp32 or bf16, each its own; the sums are fp32, rounded once when y is bf16.
struct GemmBatch {
  int64_t batch = 1, x_bs = 0, w_row_bs = 0, y_bs = 0;
};
cudaError_t gemm_f32(const DevAct& x, int64_t m, const DevWeight& w, bool transposed, int64_t n_out,
                     int64_t k_in, const DevAct& y, const GemmBatch& b, cudaStream_t s);
// Small-M x @ W^T (m <= 16): one warp per output column, weights streamed once. Returns
// cudaErrorNotSupported when shape/alignment do not allow it (the caller falls back to gemm_f32).
cudaError_t gemm_small_m(const DevAct& x, int64_t m, const DevWeight& w, const DevAct& y, cudaStream_t s);

// ---- cuBLASLt block-scaled FP8 GEMM (gemm_lt.cpp): y [m, n] (fp32, row stride ldy) = xq @ W^T with xq
// e4m3 [m, k] (row stride k) and its VEC128 scales [ceil(k/128), m]; W e4m3 [n, k] with BLK128x128 scales
// (row0 % 128 == 0, scale_ld % 4 == 0). Returns false when cuBLASLt has no algorithm for the case or the
// call failed (the caller falls back to its own kernels); `err` then describes a failed call.
class LtGemm {
 public:
  LtGemm();
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  bool ok() const { return handle_ != nullptr; }
  bool fp8_block_scaled(const uint8_t* xq, const float* x_scales, int64_t m, const DevWeight& w, float* y,
                        int64_t ldy, cudaStream_t s, const char** err);
  // y [m, n] (fp32 or bf16, row stride ldy) = x @ W^T with x bf16 [m, k] (row stride ldx) and W bf16 [n, k]:
  // bf16 tensor cores with fp32 accumulation (the products of two bf16 values are exact in fp32), y rounded
  // once when bf16. Returns false as fp8_block_scaled does.
  bool bf16(const void* x, int64_t ldx, int64_t m, const DevWeight& w, void* y, int64_t ldy, bool y_bf16,
            cudaStream_t s, const char** err);

 private:
  // The matmul described by `descs` (this file's descriptors), its algorithm cached per shape, strides,
  // alignments and kind.
  bool run(const void* descs, int64_t m, int64_t n, int64_t k, int64_t strides, uint32_t kind, const void* a,
           const void* b, void* y, cudaStream_t s, const char** err);
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  struct Plans;
  Plans* plans_ = nullptr;
};

// ---- attention (attention.cu), fp32 softmax (online, row maximum subtracted); the queries, keys, values
// and output share one type (q's), fp32 or bf16, whatever the cache's.
// Expanded, varlen: query row i attends key rows k_start[i] .. k_start[i] + q_pos[i] of k and v.
cudaError_t attention_expanded(const DevAct& q, int64_t t, const DevAct& k, const DevAct& v,
                               const int32_t* k_start, int64_t heads, int64_t dqk, int64_t dv,
                               const int32_t* q_pos, float scale, const DevAct& out, cudaStream_t s);
// Latent: query row i belongs to sequence row_seq[i] of kv and attends its cache rows 0 .. q_pos[i].
cudaError_t attention_latent(const DevAct& q_lat, const DevAct& q_rope, int64_t rope_stride, int64_t t,
                             const DevPool& cache, const DevPagedKv& kv, const int32_t* row_seq, int64_t lat,
                             int64_t rope, int64_t heads, const int32_t* q_pos, float scale,
                             const DevAct& out, cudaStream_t s);

// ---- MoE router (moe_route.cu), exactly kernels/cpu/moe_routing.cpp; logits packed [tokens, experts].
// bias: the correction bias [experts] on the device (may be null).
constexpr int64_t kMaxRouteExperts = 512;
cudaError_t moe_route(const float* logits, int64_t tokens, const RoutingParams& p, const float* bias,
                      int32_t* ids, int64_t ldi, float* weights, int64_t ldw, cudaStream_t s);

// ---- sampling (sample.cu): one block per row of logits [rows, vocab] (row stride ld), with the packed
// parameters and penalty tokens of runtime's SampleTable; ids[row] = the sampled id (-1: non-finite logits).
// scratch: [rows, vocab] floats.
cudaError_t sample(const float* logits, int64_t ld, int64_t rows, int64_t vocab, const int32_t* params,
                   const int32_t* tokens, float* scratch, int32_t* ids, cudaStream_t s);

// ---- grouped MoE (moe_grouped.cu)
// Counting sort of the pairs ids [tokens, top_k] (row stride ldi) by expert (present[e] != 0: held here):
// offsets [experts + 1], token [bound] (rows past offsets[experts] set to 0), slot_row [tokens * top_k] (-1:
// expert absent). One block; experts <= 8192.
cudaError_t moe_group(const int32_t* ids, int64_t ldi, int64_t tokens, int64_t top_k, const int32_t* present,
                      int64_t experts, int32_t* token, int64_t bound, int32_t* offsets, int32_t* slot_row,
                      cudaStream_t s);
// y[offsets[e] .. offsets[e+1]) = x[same rows] @ W_e^T for every e with weights[e].data != null (a device
// array of `experts` weights of one type); max_rows bounds any expert's rows, max_n any W_e's rows. x and y
// fp32 or bf16, each its own.
cudaError_t grouped_gemm(const DevAct& x, const DevWeight* weights, DType wtype, const int32_t* offsets,
                         int64_t experts, int64_t max_rows, int64_t max_n, const DevAct& y, cudaStream_t s);
// out[t] = sum over t's k slots with slot_row >= 0, in ascending (order, slot), of w * y[slot_row], from
// zero (an fp32 sum; y and out each fp32 or bf16, w fp32).
cudaError_t moe_combine_ordered(const DevAct& y, const int32_t* slot_row, int64_t ldsr, const float* w,
                                int64_t ldw, const int32_t* order, int64_t ldo_k, int64_t tokens, int64_t k,
                                int64_t cols, const DevAct& out, cudaStream_t s);

}  // namespace moert::cuda
