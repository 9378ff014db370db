// The CPU backend: unwraps tensors into raw pointers and calls kernels/cpu. Weights stay in the
// memory-mapped checkpoint; FP8 blocks are dequantised on the fly inside the GEMMs.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/host_pool.h"
#include "cpu/act_quant.h"
#include "cpu/attention.h"
#include "cpu/dequant.h"
#include "cpu/elementwise.h"
#include "cpu/gemm.h"
#include "cpu/moe_routing.h"
#include "cpu/norm.h"
#include "cpu/rope.h"
#include "cpu/thread_pool.h"
#include "util/error.h"
#include "weights/safetensors.h"

namespace moert {
namespace {

using kernels::WeightRef;
using kernels::WeightType;

void check(bool ok, const char* what) {
  if (!ok) fail(ErrorCode::kInternal, std::string("cpu backend: shape mismatch in ") + what);
}

WeightType weight_type(DType t) {
  switch (t) {
    case DType::kF32:
      return WeightType::kF32;
    case DType::kBF16:
      return WeightType::kBF16;
    case DType::kF16:
      return WeightType::kF16;
    case DType::kF8E4M3:
      return WeightType::kF8E4M3;
    default:
      fail(ErrorCode::kInternal, std::string("cpu backend: unsupported weight dtype ") + dtype_name(t));
  }
}

WeightRef ref(const Tensor& w) {
  WeightRef r;
  r.type = weight_type(w.dtype);
  r.data = w.data;
  r.n = w.rows;
  r.k = w.cols;
  r.ld = w.ld;
  return r;
}

WeightRef ref(const WeightMatrix& m) {
  WeightRef r = ref(m.w);
  if (m.fp8()) {
    r.scale = m.scale.ptr<const float>();
    r.scale_ld = m.scale.ld;
    r.row0 = m.row0;
  }
  return r;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, bool batch_invariant) : pool_(threads), batch_invariant_(batch_invariant) {}
  const char* name() const override { return "cpu"; }
  DeviceKind device() const override { return DeviceKind::kCpu; }

  Tensor empty(DType dtype, int64_t rows, int64_t cols) override {
    Tensor t;
    t.dtype = dtype;
    t.rows = rows;
    t.cols = cols;
    t.ld = cols;
    const size_t bytes = std::max<size_t>(64, static_cast<size_t>(rows * cols) * dtype_size(dtype));
    t.owner = pool_alloc_->allocate(bytes);
    t.data = t.owner.get();
    return t;
  }

  void fill_zero(Tensor& t) override {
    for (int64_t r = 0; r < t.rows; ++r)
      std::memset(static_cast<uint8_t*>(t.data) + r * t.ld * dtype_size(t.dtype), 0,
                  t.cols * dtype_size(t.dtype));
  }

  Tensor weight(const TensorInfo& info, int64_t rows, int64_t cols) override {
    Tensor t;
    t.dtype = info.dtype;
    t.rows = rows;
    t.cols = cols;
    t.ld = cols;
    t.data = const_cast<uint8_t*>(info.data);
    return t;
  }

  void copy_to_host(const Tensor& src, float* dst) override {
    check(src.dtype == DType::kF32, "copy_to_host");
    for (int64_t r = 0; r < src.rows; ++r)
      std::memcpy(dst + r * src.cols, src.ptr<float>() + r * src.ld, src.cols * 4);
  }
  void copy_to_host_i32(const Tensor& src, int32_t* dst) override {
    check(src.dtype == DType::kI32, "copy_to_host_i32");
    for (int64_t r = 0; r < src.rows; ++r)
      std::memcpy(dst + r * src.cols, src.ptr<int32_t>() + r * src.ld, src.cols * 4);
  }
  void copy_from_host(const float* src, Tensor& dst) override {
    check(dst.dtype == DType::kF32, "copy_from_host");
    for (int64_t r = 0; r < dst.rows; ++r)
      std::memcpy(dst.ptr<float>() + r * dst.ld, src + r * dst.cols, dst.cols * 4);
  }
  void copy_from_host_i32(const int32_t* src, Tensor& dst) override {
    check(dst.dtype == DType::kI32, "copy_from_host_i32");
    for (int64_t r = 0; r < dst.rows; ++r)
      std::memcpy(dst.ptr<int32_t>() + r * dst.ld, src + r * dst.cols, dst.cols * 4);
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    check(out.rows == ids.rows && out.cols == table.cols, "embedding");
    const WeightRef w = ref(table);
    for (int64_t i = 0; i < ids.rows; ++i) {
      const int32_t id = ids.ptr<int32_t>()[i * ids.ld];
      check(id >= 0 && id < table.rows, "embedding (token id)");
      kernels::dequant_row(w, id, 0, table.cols, out.ptr<float>() + i * out.ld);
    }
  }

  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    check(x.cols == w.cols * w.rows && out.cols == x.cols && out.rows == x.rows, "rmsnorm");
    WeightRef r = ref(w);
    r.n = 1;
    r.k = x.cols;
    kernels::rmsnorm(x.ptr<float>(), x.rows, x.ld, x.cols, r, eps, out.ptr<float>(), out.ld);
  }

  void linear(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) override {
    check(x.cols == w.k() && out.cols == w.n() && out.rows == x.rows, "linear");
    const float* in = quantised_input(x, w, mode);
    const int64_t ldx = in == x.ptr<float>() ? x.ld : x.cols;
    kernels::gemm_xwt(in, x.rows, ldx, ref(w), out.ptr<float>(), out.ld, &pool_, batch_invariant_);
  }

  void rope(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
            const std::vector<float>& inv_freq, float attention_factor) override {
    check(positions.rows == x.rows && static_cast<int64_t>(inv_freq.size()) == dim / 2, "rope");
    kernels::rope_interleaved(x.ptr<float>(), x.rows, x.ld, heads, head_stride, dim, positions.ptr<int32_t>(),
                              inv_freq.data(), attention_factor);
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    check(gate.rows == up.rows && gate.cols == up.cols && out.cols == gate.cols, "silu_mul");
    kernels::silu_mul(gate.ptr<float>(), gate.ld, up.ptr<float>(), up.ld, gate.rows, gate.cols,
                      out.ptr<float>(), out.ld);
  }

  void add(const Tensor& x, Tensor& y) override {
    check(x.rows == y.rows && x.cols == y.cols, "add");
    for (int64_t r = 0; r < x.rows; ++r)
      kernels::add_inplace(x.cols, x.ptr<float>() + r * x.ld, y.ptr<float>() + r * y.ld);
  }

  void attention_expanded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                          const Tensor& positions, float scale, Tensor& out) override {
    const int64_t dqk = q.cols / heads, dv = v.cols / heads;
    check(k.cols == q.cols && out.cols == v.cols && k.rows == v.rows && positions.rows == q.rows,
          "attention_expanded");
    kernels::attention_expanded(q.ptr<float>(), q.rows, q.ld, k.ptr<float>(), k.ld, v.ptr<float>(), v.ld,
                                k.rows, heads, dqk, dv, positions.ptr<int32_t>(), scale, out.ptr<float>(),
                                out.ld, &pool_);
  }

  void mla_absorb_q(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b, int64_t heads,
                    int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode) override {
    const int64_t lat = kv_b.k();
    check(q_lat.cols == heads * lat && q_lat.rows == q_nope.rows, "mla_absorb_q");
    for (int64_t h = 0; h < heads; ++h) {
      Tensor xin = q_nope.slice_cols(h * head_stride, nope);
      const float* in = quantised_input(xin, kv_b, mode);
      const int64_t ldx = in == xin.ptr<float>() ? xin.ld : xin.cols;
      kernels::gemm_xw(in, xin.rows, ldx, ref(kv_b.rows(h * (nope + vdim), nope)),
                       q_lat.ptr<float>() + h * lat, q_lat.ld, &pool_);
    }
  }

  void mla_absorb_out(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                      int64_t vdim, Tensor& out, ActMode mode) override {
    const int64_t lat = kv_b.k();
    check(o_lat.cols == heads * lat && out.cols == heads * vdim, "mla_absorb_out");
    for (int64_t h = 0; h < heads; ++h) {
      Tensor xin = o_lat.slice_cols(h * lat, lat);
      const float* in = quantised_input(xin, kv_b, mode);
      const int64_t ldx = in == xin.ptr<float>() ? xin.ld : xin.cols;
      kernels::gemm_xwt(in, xin.rows, ldx, ref(kv_b.rows(h * (nope + vdim) + nope, vdim)),
                        out.ptr<float>() + h * vdim, out.ld, &pool_, batch_invariant_);
    }
  }

  void attention_latent(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                        const LatentCacheView& cache, int64_t heads, int64_t lat, int64_t rope,
                        const Tensor& positions, float scale, Tensor& out) override {
    check(q_lat.cols == heads * lat && q_rope.cols >= (heads - 1) * rope_head_stride + rope &&
              out.cols == heads * lat,
          "attention_latent");
    kernels::PagedRows rows{cache.pool.ptr<const float>(), cache.page_table, cache.page_rows,
                            cache.page_stride};
    kernels::attention_latent(q_lat.ptr<float>(), q_lat.ld, q_rope.ptr<float>(), q_rope.ld, rope_head_stride,
                              q_lat.rows, rows, lat, rope, heads, positions.ptr<int32_t>(), scale,
                              out.ptr<float>(), out.ld, &pool_, !batch_invariant_);
  }

  void mla_expand_kv(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope, int64_t vdim,
                     Tensor& k, Tensor& v) override {
    const int64_t rope = k_rope.cols, s = kvb.rows;
    check(kvb.cols == heads * (nope + vdim) && k.cols == heads * (nope + rope) && v.cols == heads * vdim &&
              k.rows == s && v.rows == s && k_rope.rows == s,
          "mla_expand_kv");
    for (int64_t j = 0; j < s; ++j) {
      const float* src = kvb.ptr<float>() + j * kvb.ld;
      float* kj = k.ptr<float>() + j * k.ld;
      float* vj = v.ptr<float>() + j * v.ld;
      for (int64_t h = 0; h < heads; ++h) {
        std::memcpy(kj + h * (nope + rope), src + h * (nope + vdim), nope * sizeof(float));
        std::memcpy(kj + h * (nope + rope) + nope, k_rope.ptr<float>() + j * k_rope.ld, rope * sizeof(float));
        std::memcpy(vj + h * vdim, src + h * (nope + vdim) + nope, vdim * sizeof(float));
      }
    }
  }

  void cache_write(const Tensor& rows, const LatentCacheView& cache, int64_t pos0) override {
    const int64_t width = rows.cols;
    for (int64_t i = 0; i < rows.rows; ++i) {
      const int64_t j = pos0 + i;
      float* dst = cache.pool.ptr<float>() + cache.page_table[j / cache.page_rows] * cache.page_stride +
                   (j % cache.page_rows) * width;
      std::memcpy(dst, rows.ptr<float>() + i * rows.ld, width * sizeof(float));
    }
  }

  void cache_read(const LatentCacheView& cache, int64_t n, Tensor& out) override {
    const int64_t width = out.cols;
    kernels::PagedRows rows{cache.pool.ptr<const float>(), cache.page_table, cache.page_rows,
                            cache.page_stride};
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(out.ptr<float>() + j * out.ld, rows.row(j, width), width * sizeof(float));
  }

  void moe_route(const Tensor& logits, const Tensor& bias, const RouterConfig& cfg, Tensor& ids,
                 Tensor& weights) override {
    check(logits.cols == cfg.experts && ids.cols == cfg.top_k && weights.cols == cfg.top_k &&
              logits.ld == logits.cols,
          "moe_route");
    auto p = cfg.to_kernel_params<kernels::RoutingParams>();
    std::vector<float> b;
    if (!bias.empty()) {
      b.resize(cfg.experts);
      kernels::dequant_row(ref(bias), 0, 0, cfg.experts, b.data());
      p.bias = b.data();
    }
    kernels::route_topk(logits.ptr<float>(), logits.rows, p, ids.ptr<int32_t>(), weights.ptr<float>());
  }

  void moe_experts(const Tensor& x, const Tensor& ids, const Tensor& weights,
                   const std::vector<const ExpertWeights*>& experts, Tensor& out, ActMode mode) override {
    const int64_t t = x.rows, top_k = ids.cols, hidden = x.cols;
    check(out.rows == t && out.cols == hidden, "moe_experts");
    fill_zero(out);
    // Group the (token, slot) pairs by expert so each expert's weights are read once per step.
    const int64_t E = static_cast<int64_t>(experts.size());
    std::vector<std::vector<std::pair<int32_t, float>>> by_expert(E);
    for (int64_t i = 0; i < t; ++i)
      for (int64_t s = 0; s < top_k; ++s) {
        const int32_t e = ids.ptr<int32_t>()[i * ids.ld + s];
        check(e >= 0 && e < E, "moe_experts (expert id)");
        by_expert[e].emplace_back(static_cast<int32_t>(i), weights.ptr<float>()[i * weights.ld + s]);
      }
    for (int64_t e = 0; e < E; ++e) {
      const auto& list = by_expert[e];
      if (list.empty() || !experts[e]) continue;
      const ExpertWeights& ew = *experts[e];
      const int64_t n = static_cast<int64_t>(list.size()), inter = ew.gate.n();
      Tensor xin = scratch(0, n, hidden), g = scratch(1, n, inter), u = scratch(2, n, inter),
             y = scratch(3, n, hidden);
      for (int64_t r = 0; r < n; ++r)
        std::memcpy(xin.ptr<float>() + r * hidden, x.ptr<float>() + list[r].first * x.ld,
                    hidden * sizeof(float));
      linear(xin, ew.gate, g, mode);
      linear(xin, ew.up, u, mode);
      silu_mul(g, u, g);
      linear(g, ew.down, y, mode);
      for (int64_t r = 0; r < n; ++r)
        kernels::axpy(hidden, list[r].second, y.ptr<float>() + r * hidden,
                      out.ptr<float>() + list[r].first * out.ld);
    }
  }

 private:
  // The GEMM input: x itself, or (fp8 activations with an FP8 weight) its quantised copy.
  const float* quantised_input(const Tensor& x, const WeightMatrix& w, ActMode mode) {
    if (mode != ActMode::kFp8 || !w.fp8()) return x.ptr<float>();
    std::vector<float>& buf = quant_buf_;
    buf.resize(static_cast<size_t>(x.rows * x.cols));
    for (int64_t r = 0; r < x.rows; ++r)
      std::memcpy(buf.data() + r * x.cols, x.ptr<float>() + r * x.ld, x.cols * 4);
    kernels::act_quant_dequant(buf.data(), x.rows, x.cols, x.cols);
    return buf.data();
  }

  // Reusable scratch matrices (grown, never shrunk) so the MoE loop does not allocate per expert.
  Tensor scratch(int slot, int64_t rows, int64_t cols) {
    Tensor& s = scratch_[slot];
    if (s.empty() || s.rows * s.cols < rows * cols)
      s = empty(DType::kF32, std::max<int64_t>(rows, 1) * 2, cols);
    Tensor t = s;
    t.rows = rows;
    t.cols = cols;
    t.ld = cols;
    return t;
  }

  kernels::ThreadPool pool_;
  const bool batch_invariant_;
  std::shared_ptr<HostPool> pool_alloc_ = std::make_shared<HostPool>();
  std::vector<float> quant_buf_;
  Tensor scratch_[4];
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads, bool batch_invariant) {
  return std::make_unique<CpuBackend>(threads, batch_invariant);
}

}  // namespace moert
