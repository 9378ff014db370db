// The op interface the model graph is written against: one declaration per op, one implementation per
// backend (cpu_backend.cpp, cuda_backend.cu). Activations are F32 tensors on the backend's device;
// weights are WeightMatrix views in their stored type. Ops check shapes they could get wrong and throw
// Error(kInternal) on a mismatch: the model is expected to pass consistent shapes.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/tensor.h"

namespace moert {

struct TensorInfo;

// Activation numerics of the FP8 GEMMs.
enum class ActMode : uint8_t {
  kF32,  // the reference: activations stay fp32
  kFp8,  // DeepSeek's: activations quantised per 1x128 tile (scale = amax / 448) before each FP8 GEMM
};

// How an attention op sees the latent cache of one sequence for one layer (see runtime/kv).
struct LatentCacheView {
  Tensor pool;                          // F32, the whole page pool of this layer's cache storage
  const int32_t* page_table = nullptr;  // host pointer on CPU; device pointer on CUDA
  int64_t page_rows = 0;                // tokens per page
  int64_t page_stride = 0;              // elements between pages
  int64_t length = 0;                   // tokens valid in the cache
};

struct RouterConfig {
  int64_t experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  bool sigmoid = true, group_sum_top2 = true, grouped = true, normalize = true,
       scale_only_unnormalized = false;
  float routed_scale = 1.0f;

  // The same fields in a backend kernel's own parameter struct (kernels stay free of runtime types).
  template <typename Params>
  Params to_kernel_params() const {
    Params p;
    p.experts = experts;
    p.top_k = top_k;
    p.n_group = n_group;
    p.topk_group = topk_group;
    p.sigmoid = sigmoid;
    p.group_sum_top2 = group_sum_top2;
    p.grouped = grouped;
    p.normalize = normalize;
    p.scale_only_unnormalized = scale_only_unnormalized;
    p.routed_scale = routed_scale;
    return p;
  }
};

struct ExpertWeights {
  WeightMatrix gate, up, down;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual DeviceKind device() const = 0;

  // Memory. New tensors are uninitialised, row-major with ld = cols.
  virtual Tensor empty(DType dtype, int64_t rows, int64_t cols) = 0;
  virtual void fill_zero(Tensor& t) = 0;
  // A checkpoint tensor ([rows, cols]) on this device: a view of the mapping on CPU, a copy elsewhere.
  virtual Tensor weight(const TensorInfo& info, int64_t rows, int64_t cols) = 0;
  virtual void copy_to_host(const Tensor& src, float* dst) = 0;        // F32 [rows, cols] packed
  virtual void copy_to_host_i32(const Tensor& src, int32_t* dst) = 0;  // I32 [rows, cols] packed
  virtual void copy_from_host(const float* src, Tensor& dst) = 0;      // F32 [rows, cols] packed
  virtual void copy_from_host_i32(const int32_t* src, Tensor& dst) = 0;

  // out[i] = table[ids[i]] (as F32). ids: I32 [n, 1].
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  // out = w * x / sqrt(mean(x^2) + eps), per row. x and out may alias.
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) = 0;
  // out = x @ W^T.
  virtual void linear(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) = 0;
  // RoPE on interleaved pairs of `heads` vectors of `dim` values at column stride `head_stride`, in place.
  virtual void rope(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
                    const std::vector<float>& inv_freq, float attention_factor) = 0;
  // out = silu(gate) * up.
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // y += x.
  virtual void add(const Tensor& x, Tensor& y) = 0;
  // Expanded causal attention (see kernels/cpu/attention.h). positions: I32 [t, 1], query i's position.
  virtual void attention_expanded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                                  const Tensor& positions, float scale, Tensor& out) = 0;
  // MLA absorbed into the latent: q_lat[:, h] = q_nope[:, h] @ W_UK[h] (W_UK[h] = kv_b rows of head h's
  // nope part), out[:, h] = o_lat[:, h] @ W_UV[h]^T.
  virtual void mla_absorb_q(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b,
                            int64_t heads, int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode) = 0;
  virtual void mla_absorb_out(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                              int64_t vdim, Tensor& out, ActMode mode) = 0;
  // Attention over the latent cache: q_lat [t, heads * lat]; q_rope: head h's rope query at columns
  // h * rope_head_stride .. + rope; out [t, heads * lat].
  virtual void attention_latent(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                                const LatentCacheView& cache, int64_t heads, int64_t lat, int64_t rope,
                                const Tensor& positions, float scale, Tensor& out) = 0;
  // Expanded keys and values from kv_b's output [s, heads * (nope + vdim)] and the rope keys [s, rope]:
  // k [s, heads * (nope + rope)] = per head [k_nope | k_rope], v [s, heads * vdim].
  virtual void mla_expand_kv(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope,
                             int64_t vdim, Tensor& k, Tensor& v) = 0;
  // Writes rows [t, lat + rope] to cache positions pos0 .. pos0 + t - 1.
  virtual void cache_write(const Tensor& rows, const LatentCacheView& cache, int64_t pos0) = 0;
  // Reads cache rows 0 .. n-1 into out [n, lat + rope].
  virtual void cache_read(const LatentCacheView& cache, int64_t n, Tensor& out) = 0;

  // Router: logits [t, experts] -> ids I32 [t, top_k], weights F32 [t, top_k]. bias may be empty.
  virtual void moe_route(const Tensor& logits, const Tensor& bias, const RouterConfig& cfg, Tensor& ids,
                         Tensor& weights) = 0;
  // out = sum over each token's top-k of weight * expert(x). Experts absent from `experts` (null gate)
  // contribute nothing (another rank holds them).
  virtual void moe_experts(const Tensor& x, const Tensor& ids, const Tensor& weights,
                           const std::vector<const ExpertWeights*>& experts, Tensor& out, ActMode mode) = 0;
};

// batch_invariant: every row's result of every op is the same bits whatever else is in the batch (the GEMMs
// take their packed-panel path at every row count; slower for decode-sized calls). Then a sequence's logits
// do not depend on the requests batched with it, on the chunking of its prompt, on expert parallelism (exact
// combine) or on the two-microbatch split.
std::unique_ptr<Backend> make_cpu_backend(int threads, bool batch_invariant = false);

}  // namespace moert
