// The CPU backend: unwraps tensors into raw pointers and calls kernels/cpu. Weights stay in the
// memory-mapped checkpoint; FP8 blocks are dequantised on the fly inside the GEMMs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/host_pool.h"
#include "backend/finite_check.h"
#include "cpu/act_quant.h"
#include "cpu/attention.h"
#include "cpu/cpu_features.h"
#include "cpu/dequant.h"
#include "cpu/elementwise.h"
#include "cpu/gemm.h"
#include "cpu/gemm_fp8act.h"
#include "cpu/gemm_q4.h"
#include "cpu/moe_routing.h"
#include "cpu/norm.h"
#include "cpu/rope.h"
#include "cpu/thread_pool.h"
#include "util/error.h"
#include "weights/safetensors.h"

namespace moert {
namespace {

using kernels::WeightRef;

// A failed check of what only the compute sees (an index tensor's contents, the CPU's own limits); the
// arguments' shapes were checked by Backend's op (backend.cpp).
[[noreturn]] void fail_op(const char* op, const std::string& what) {
  fail(ErrorCode::kInternal, std::string("backend op ") + op + ": " + what);
}

// The backend's op checked the dtype (a weight type).
WeightRef ref(const Tensor& w) {
  WeightRef r;
  r.type = w.dtype;
  r.data = w.data;
  r.n = w.rows;
  r.k = w.cols;
  r.ld = w.ld;
  return r;
}

WeightRef ref(const WeightMatrix& m) {
  if (m.q4()) {
    WeightRef r;
    r.type = DType::kQ4;
    r.data = m.w.data;
    r.n = m.w.rows;
    r.k = m.k();
    r.ld = 2 * m.w.ld;
    r.q4_scale = m.scale.ptr<const uint16_t>();
    r.q4_min = m.min.ptr<const uint16_t>();
    r.q4_ld = m.scale.ld;
    r.group = m.q4_group;
    return r;
  }
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

  // The paths linear_impl and the q4 GEMMs take here (batch-invariant mode takes no matrix-unit path).
  bool path_info(const std::string& key, int64_t* out) const override {
    if (key == "cpu_isa")
      *out = static_cast<int64_t>(kernels::cpu_isa());
    else if (key == "cpu_amx_bf16")
      *out = !batch_invariant_ && std::strcmp(kernels::cpu_matmul_path(), "amx-bf16") == 0;
    else if (key == "cpu_amx_int8")
      *out = !batch_invariant_ && kernels::q4_prefill_path() == kernels::Q4PrefillPath::kAmxInt8;
    else if (key == "cpu_q4_int8")
      *out = !batch_invariant_ && kernels::q4_int8_enabled();
    else
      return false;
    return true;
  }

 protected:
  Tensor empty_impl(DType dtype, int64_t rows, int64_t cols) override {
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

  void fill_zero_impl(Tensor& t) override {
    for (int64_t r = 0; r < t.rows; ++r)
      std::memset(static_cast<uint8_t*>(t.data) + r * t.ld * dtype_size(t.dtype), 0,
                  t.cols * dtype_size(t.dtype));
  }

  Tensor weight_impl(const TensorInfo& info, int64_t rows, int64_t cols) override {
    Tensor t;
    t.dtype = info.dtype;
    t.rows = rows;
    t.cols = cols;
    t.ld = cols;
    t.data = const_cast<uint8_t*>(info.data);
    return t;
  }

  // 4-byte elements (F32 or I32), packed on the host.
  void copy_to_host_impl(const Tensor& src, void* dst) override {
    for (int64_t r = 0; r < src.rows; ++r)
      std::memcpy(static_cast<uint8_t*>(dst) + r * src.cols * 4,
                  static_cast<const uint8_t*>(src.data) + r * src.ld * 4, src.cols * 4);
  }
  void copy_from_host_impl(const void* src, Tensor& dst) override {
    for (int64_t r = 0; r < dst.rows; ++r)
      std::memcpy(static_cast<uint8_t*>(dst.data) + r * dst.ld * 4,
                  static_cast<const uint8_t*>(src) + r * dst.cols * 4, dst.cols * 4);
  }

  void embedding_impl(const Tensor& table, const Tensor& ids, Tensor& out) override {
    const WeightRef w = ref(table);
    for (int64_t i = 0; i < ids.rows; ++i) {
      const int32_t id = ids.ptr<int32_t>()[i * ids.ld];
      if (id < 0 || id >= table.rows)
        fail_op("embedding", "ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                                 " is not a row of table [" + std::to_string(table.rows) + ", " +
                                 std::to_string(table.cols) + "]");
      kernels::dequant_row(w, id, 0, table.cols, out.ptr<float>() + i * out.ld);
    }
  }

  void rmsnorm_impl(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    WeightRef r = ref(w);
    r.n = 1;
    r.k = x.cols;
    kernels::rmsnorm(x.ptr<float>(), x.rows, x.ld, x.cols, r, eps, out.ptr<float>(), out.ld);
  }

  void linear_impl(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) override {
    // FP8 weights at prefill sizes on the CPU's matrix instructions where present: with FP8 activations
    // (AMX tiles, or AVX-512-BF16 when asked for) the same products as the quantise-dequantise path below;
    // with fp32 activations (AMX tiles) x split exactly into bf16 terms, the fp32 kernel's result up to
    // fp32 rounding. Not in batch-invariant mode (whose rows must equal the decode path's) nor at
    // decode sizes (memory-bound: the dot-product path is as fast).
    if (w.fp8() && !batch_invariant_ && x.rows > 4 * kFuseRows) {
      const auto gemm = mode == ActMode::kFp8 ? kernels::gemm_xwt_fp8act : kernels::gemm_xwt_amx;
      if (gemm(x.ptr<float>(), x.rows, x.ld, ref(w), out.ptr<float>(), out.ld, &pool_)) return;
    }
    const float* in = quantised_input(x, w, mode);
    const int64_t ldx = in == x.ptr<float>() ? x.ld : x.cols;
    kernels::gemm_xwt(in, x.rows, ldx, ref(w), out.ptr<float>(), out.ld, &pool_, batch_invariant_);
  }

  void rope_impl(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
                 const Tensor& inv_freq, float attention_factor) override {
    kernels::rope_interleaved(x.ptr<float>(), x.rows, x.ld, heads, head_stride, dim, positions.ptr<int32_t>(),
                              inv_freq.ptr<float>(), attention_factor);
  }

  void gather_rows_impl(const Tensor& x, const Tensor& rows, Tensor& out) override {
    const int32_t* r = rows.ptr<int32_t>();
    for (int64_t i = 0; i < rows.rows; ++i) {
      if (r[i * rows.ld] < 0 || r[i * rows.ld] >= x.rows)
        fail_op("gather_rows", "rows[" + std::to_string(i) + "] = " + std::to_string(r[i * rows.ld]) +
                                   " is not a row of x (" + std::to_string(x.rows) + ")");
      std::memcpy(out.ptr<float>() + i * out.ld, x.ptr<float>() + r[i * rows.ld] * x.ld,
                  x.cols * sizeof(float));
    }
  }

  void silu_mul_impl(const Tensor& gate, const Tensor& up, Tensor& out) override {
    kernels::silu_mul(gate.ptr<float>(), gate.ld, up.ptr<float>(), up.ld, gate.rows, gate.cols,
                      out.ptr<float>(), out.ld);
  }

  void add_impl(const Tensor& x, Tensor& y) override {
    for (int64_t r = 0; r < x.rows; ++r)
      kernels::add_inplace(x.cols, x.ptr<float>() + r * x.ld, y.ptr<float>() + r * y.ld);
  }

  void attention_expanded_impl(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                               const Tensor& positions, const Tensor& k_start, float scale,
                               Tensor& out) override {
    const int64_t dqk = q.cols / heads, dv = v.cols / heads, t = q.rows;
    // Runs of rows with one k_start are one sequence's queries.
    const int32_t* ks = k_start.ptr<int32_t>();
    const int32_t* pos = positions.ptr<int32_t>();
    std::vector<kernels::ExpandedSeq>& seqs = expanded_seqs_;
    seqs.clear();
    for (int64_t i = 0; i < t; ++i) {
      if (seqs.empty() || ks[i] != seqs.back().k0) seqs.push_back({i, 0, ks[i], 0});
      kernels::ExpandedSeq& sq = seqs.back();
      ++sq.qn;
      sq.kn = std::max<int64_t>(sq.kn, pos[i] + 1);
    }
    kernels::attention_expanded(q.ptr<float>(), q.ld, k.ptr<float>(), k.ld, v.ptr<float>(), v.ld, seqs.data(),
                                static_cast<int64_t>(seqs.size()), heads, dqk, dv, pos, scale,
                                out.ptr<float>(), out.ld, &pool_);
  }

  void mla_absorb_q_impl(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b, int64_t heads,
                         int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode) override {
    const int64_t lat = kv_b.k();
    if (fuse_heads(q_nope.rows, heads, kv_b, mode)) {
      // Decode: one parallel_for over the heads (each head's product single-threaded, the same bits as
      // the per-head calls) instead of one per head; the per-call barrier cost more than the small GEMMs.
      kernels::parallel_for(&pool_, heads, 1, [&](int64_t hb, int64_t he, int) {
        for (int64_t h = hb; h < he; ++h)
          kernels::gemm_xw(q_nope.ptr<float>() + h * head_stride, q_nope.rows, q_nope.ld,
                           ref(kv_b.rows(h * (nope + vdim), nope)), q_lat.ptr<float>() + h * lat, q_lat.ld,
                           nullptr);
      });
      return;
    }
    for (int64_t h = 0; h < heads; ++h) {
      Tensor xin = q_nope.slice_cols(h * head_stride, nope);
      const float* in = quantised_input(xin, kv_b, mode);
      const int64_t ldx = in == xin.ptr<float>() ? xin.ld : xin.cols;
      kernels::gemm_xw(in, xin.rows, ldx, ref(kv_b.rows(h * (nope + vdim), nope)),
                       q_lat.ptr<float>() + h * lat, q_lat.ld, &pool_);
    }
  }

  void mla_absorb_out_impl(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                           int64_t vdim, Tensor& out, ActMode mode) override {
    const int64_t lat = kv_b.k();
    if (fuse_heads(o_lat.rows, heads, kv_b, mode)) {
      kernels::parallel_for(&pool_, heads, 1, [&](int64_t hb, int64_t he, int) {
        for (int64_t h = hb; h < he; ++h)
          kernels::gemm_xwt(o_lat.ptr<float>() + h * lat, o_lat.rows, o_lat.ld,
                            ref(kv_b.rows(h * (nope + vdim) + nope, vdim)), out.ptr<float>() + h * vdim,
                            out.ld, nullptr, batch_invariant_);
      });
      return;
    }
    for (int64_t h = 0; h < heads; ++h) {
      Tensor xin = o_lat.slice_cols(h * lat, lat);
      const float* in = quantised_input(xin, kv_b, mode);
      const int64_t ldx = in == xin.ptr<float>() ? xin.ld : xin.cols;
      kernels::gemm_xwt(in, xin.rows, ldx, ref(kv_b.rows(h * (nope + vdim) + nope, vdim)),
                        out.ptr<float>() + h * vdim, out.ld, &pool_, batch_invariant_);
    }
  }

  void attention_latent_impl(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                             const LatentPool& cache, const PagedKv& kv, const Tensor& row_seq, int64_t heads,
                             int64_t lat, int64_t rope, const Tensor& positions, float scale,
                             Tensor& out) override {
    const int64_t t = q_lat.rows;
    require_f32_pool("attention_latent", cache);
    // One page table per sequence, pointing into the batch's CSR table.
    const int32_t* indptr = kv.indptr.ptr<int32_t>();
    const int32_t* pages = kv.pages.ptr<int32_t>();
    std::vector<kernels::PagedRows>& caches = paged_rows_;
    caches.resize(std::max<int64_t>(kv.seqs, 1));
    for (int64_t s = 0; s < kv.seqs; ++s)
      caches[s] = {cache.pool.ptr<const float>(), pages + indptr[s], cache.page_rows, cache.page_stride};
    // The tables were validated once, where the step batch was built; no per-row checks here.
    const int32_t* rs = row_seq.ptr<int32_t>();
    const int32_t* pos = positions.ptr<int32_t>();
    kernels::attention_latent(q_lat.ptr<float>(), q_lat.ld, q_rope.ptr<float>(), q_rope.ld, rope_head_stride,
                              t, caches.data(), rs, lat, rope, heads, pos, scale, out.ptr<float>(), out.ld,
                              &pool_, !batch_invariant_);
  }

  void mla_expand_kv_impl(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope, int64_t vdim,
                          Tensor& k, Tensor& v) override {
    const int64_t rope = k_rope.cols, s = kvb.rows;
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

  void cache_write_impl(const Tensor& rows, const LatentPool& cache, const Tensor& slots) override {
    require_f32_pool("cache_write", cache);
    const int32_t* sl = slots.ptr<int32_t>();
    for (int64_t i = 0; i < rows.rows; ++i)
      std::memcpy(cache_row(cache, sl[i]), rows.ptr<float>() + i * rows.ld, cache.width * sizeof(float));
  }

  void cache_gather_impl(const LatentPool& cache, const Tensor& slots, Tensor& out) override {
    require_f32_pool("cache_gather", cache);
    const int32_t* sl = slots.ptr<int32_t>();
    for (int64_t i = 0; i < out.rows; ++i)
      std::memcpy(out.ptr<float>() + i * out.ld, cache_row(cache, sl[i]), cache.width * sizeof(float));
  }

  void moe_route_impl(const Tensor& logits, const Tensor& bias, const RoutingParams& p, Tensor& ids,
                      Tensor& weights) override {
    std::vector<float> b;
    if (!bias.empty()) {
      b.resize(p.experts);
      kernels::dequant_row(ref(bias), 0, 0, p.experts, b.data());
    }
    kernels::route_topk(logits.ptr<float>(), logits.rows, p, b.empty() ? nullptr : b.data(),
                        ids.ptr<int32_t>(), weights.ptr<float>());
  }

  void moe_group_impl(const Tensor& ids, const ExpertSet& set, MoeGrouping& g) override {
    const int64_t t = ids.rows, k = ids.cols, E = set.size();
    g.offsets = empty(DType::kI32, E + 1, 1);
    g.slot_row = empty(DType::kI32, t, k);
    int32_t* off = g.offsets.ptr<int32_t>();
    std::fill(off, off + E + 1, 0);
    const int32_t* id = ids.ptr<int32_t>();
    for (int64_t i = 0; i < t; ++i)
      for (int64_t s = 0; s < k; ++s) {
        const int32_t e = id[i * ids.ld + s];
        if (e < 0 || e >= E)
          fail_op("moe_group", "ids[" + std::to_string(i) + ", " + std::to_string(s) +
                                   "] = " + std::to_string(e) + " is not an expert of the set (" +
                                   std::to_string(E) + ")");
        if (set.experts[e]) ++off[e + 1];
      }
    for (int64_t e = 0; e < E; ++e) off[e + 1] += off[e];
    g.rows = off[E];
    g.max_per_expert = t;
    g.token = empty(DType::kI32, std::max<int64_t>(g.rows, 1), 1);
    g.token.rows = g.rows;
    std::vector<int32_t>& fill = group_fill_;
    fill.assign(off, off + E);
    int32_t* slot_row = g.slot_row.ptr<int32_t>();
    for (int64_t i = 0; i < t; ++i)
      for (int64_t s = 0; s < k; ++s) {
        const int32_t e = id[i * ids.ld + s];
        if (!set.experts[e]) {
          slot_row[i * k + s] = -1;
          continue;
        }
        const int32_t r = fill[e]++;
        g.token.ptr<int32_t>()[r] = static_cast<int32_t>(i);
        slot_row[i * k + s] = r;
      }
  }

  void moe_expert_linear_impl(const Tensor& x, const MoeGrouping& g, const ExpertSet& set, ExpertProj proj,
                              Tensor& out, ActMode mode) override {
    const int32_t* off = g.offsets.ptr<int32_t>();
    if (fused_experts(x, g, set, proj, out, mode)) return;
    for (int64_t e = 0; e < set.size(); ++e) {
      const int64_t n = off[e + 1] - off[e];
      if (n == 0 || !set.experts[e]) continue;
      const ExpertWeights& ew = *set.experts[e];
      const WeightMatrix& w = proj == ExpertProj::kGate ? ew.gate : proj == ExpertProj::kUp ? ew.up : ew.down;
      Tensor xe = x.slice_rows(off[e], n).slice_cols(0, w.k()),
             oe = out.slice_rows(off[e], n).slice_cols(0, w.n());
      linear_impl(xe, w, oe, mode);
    }
  }

  void moe_combine_impl(const Tensor& rows, const Tensor& slot_row, const Tensor& weights,
                        const Tensor& order, Tensor& out) override {
    const int64_t t = out.rows, k = slot_row.cols, H = out.cols;
    fill_zero_impl(out);
    const int32_t* sr = slot_row.ptr<int32_t>();
    const int32_t* ord = order.ptr<int32_t>();
    std::vector<int32_t> slots(k);
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t s = 0; s < k; ++s) slots[s] = static_cast<int32_t>(s);
      const int32_t* key = ord + i * order.ld;
      std::sort(slots.begin(), slots.end(),
                [&](int32_t a, int32_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); });
      for (int32_t s : slots) {
        const int32_t r = sr[i * slot_row.ld + s];
        if (r < 0) continue;
        if (r >= rows.rows)
          fail_op("moe_combine", "slot_row[" + std::to_string(i) + ", " + std::to_string(s) +
                                     "] = " + std::to_string(r) + " is not a row of rows (" +
                                     std::to_string(rows.rows) + ")");
        kernels::axpy(H, weights.ptr<float>()[i * weights.ld + s], rows.ptr<float>() + r * rows.ld,
                      out.ptr<float>() + i * out.ld);
      }
    }
  }

  void sample_impl(const Tensor& logits, const std::vector<SampleRow>& rows, const SampleTable* packed,
                   int32_t* ids) override {
    (void)packed;
    const int64_t V = logits.cols;
    for (int64_t i = 0; i < logits.rows; ++i) {
      const float* l = logits.ptr<float>() + i * logits.ld;
      const bool finite = first_non_finite(l, V) < 0;
      const SampleRow& r = rows[i];
      ids[i] = finite && r.rng ? sample_token(l, V, r.params, *r.rng, r.history) : -1;
    }
  }

 private:
  // The CPU keeps the latent cache in F32 (a GPU may hold it in BF16).
  static void require_f32_pool(const char* op, const LatentPool& cache) {
    if (cache.pool.dtype != DType::kF32)
      fail_op(op,
              std::string("cache pool is ") + dtype_name(cache.pool.dtype) + "; the CPU backend's is F32");
  }

  // The GEMM input: x itself, or (fp8 activations with an FP8 weight) its quantised copy.
  // Decode shapes (a few rows) in fp32 activations: the heads' small products in one parallel_for.
  bool fuse_heads(int64_t rows, int64_t heads, const WeightMatrix& w, ActMode mode) const {
    return rows <= kFuseRows && heads >= pool_.size() && (mode != ActMode::kFp8 || !w.fp8());
  }

  // Every expert's rows of one projection as one parallel_for over 32-row weight slices of all experts
  // (each slice single-threaded: the same bits as a call per expert), when every expert has at most
  // kFuseRows tokens (decode): one barrier per projection instead of one per expert, and the threads share
  // the experts' weights evenly. False (nothing done) otherwise.
  bool fused_experts(const Tensor& x, const MoeGrouping& g, const ExpertSet& set, ExpertProj proj,
                     Tensor& out, ActMode mode) {
    const int32_t* off = g.offsets.ptr<int32_t>();
    using Slice = FuseSlice;
    std::vector<Slice>& sl = fuse_slices_;
    sl.clear();
    for (int64_t e = 0; e < set.size(); ++e) {
      const int64_t n = off[e + 1] - off[e];
      if (n == 0 || !set.experts[e]) continue;
      const ExpertWeights& ew = *set.experts[e];
      const WeightMatrix& w = proj == ExpertProj::kGate ? ew.gate : proj == ExpertProj::kUp ? ew.up : ew.down;
      if (n > kFuseRows || (mode == ActMode::kFp8 && w.fp8())) return false;
      for (int64_t r = 0; r < w.n(); r += 32) sl.push_back({e, r, std::min<int64_t>(32, w.n() - r)});
    }
    if (sl.empty()) return true;
    const Slice* sp = sl.data();
    kernels::parallel_for(&pool_, static_cast<int64_t>(sl.size()), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const Slice& s = sp[i];
        const ExpertWeights& ew = *set.experts[s.e];
        const WeightMatrix& w = proj == ExpertProj::kGate ? ew.gate
                                : proj == ExpertProj::kUp ? ew.up
                                                          : ew.down;
        const int64_t r = off[s.e], n = off[s.e + 1] - off[s.e];
        kernels::gemm_xwt(x.ptr<float>() + r * x.ld, n, x.ld, ref(w).rows(s.r0, s.n),
                          out.ptr<float>() + r * out.ld + s.r0, out.ld, nullptr, batch_invariant_);
      }
    });
    return true;
  }

  static constexpr int64_t kFuseRows = 4;

  const float* quantised_input(const Tensor& x, const WeightMatrix& w, ActMode mode) {
    if (mode != ActMode::kFp8 || !w.fp8()) return x.ptr<float>();
    std::vector<float>& buf = quant_buf_;
    buf.resize(static_cast<size_t>(x.rows * x.cols));
    for (int64_t r = 0; r < x.rows; ++r)
      std::memcpy(buf.data() + r * x.cols, x.ptr<float>() + r * x.ld, x.cols * 4);
    kernels::act_quant_dequant(buf.data(), x.rows, x.cols, x.cols);
    return buf.data();
  }

  static float* cache_row(const LatentPool& c, int32_t slot) {
    return c.pool.ptr<float>() + (slot / c.page_rows) * c.page_stride + (slot % c.page_rows) * c.width;
  }

  kernels::ThreadPool pool_;
  const bool batch_invariant_;
  struct FuseSlice {
    int64_t e, r0, n;
  };
  std::vector<FuseSlice> fuse_slices_;
  std::shared_ptr<HostPool> pool_alloc_ = std::make_shared<HostPool>();
  std::vector<float> quant_buf_;
  std::vector<kernels::ExpandedSeq> expanded_seqs_;
  std::vector<kernels::PagedRows> paged_rows_;
  std::vector<int32_t> group_fill_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads, bool batch_invariant) {
  return std::make_unique<CpuBackend>(threads, batch_invariant);
}

}  // namespace moert
