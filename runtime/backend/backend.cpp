// The Backend ops' argument checks, once for every backend: each op checks what it can on the host, then
// calls the backend's compute (*_impl). Where the two backends' own checks had drifted apart, each op checks
// their union. Checks that read an index tensor's contents stay with the compute that reads them (the CPU's;
// a GPU cannot see them without a sync).
#include "backend/backend.h"

#include <chrono>

#include "backend/op_checks.h"
#include "util/error.h"
#include "weights/safetensors.h"

namespace moert {
namespace {

constexpr int64_t kAny = OpCheck::kAny;

std::string n_str(int64_t v) {
  return std::to_string(v);
}

// The latent pool's layout: F32 (or BF16 on a GPU) pages of page_rows rows of `width`.
void check_pool(const OpCheck& c, const LatentPool& cache) {
  if (cache.pool.empty()) c.fail("cache", "has no pool");
  if (cache.pool.dtype != DType::kF32 && cache.pool.dtype != DType::kBF16)
    c.fail("cache", std::string("pool is ") + dtype_name(cache.pool.dtype) + ", expected F32 or BF16");
  c.tensor("cache", cache.pool, cache.pool.dtype);
  if (cache.page_rows <= 0 || cache.width <= 0 || cache.page_stride < cache.page_rows * cache.width)
    c.fail("cache", "has page_rows " + n_str(cache.page_rows) + ", width " + n_str(cache.width) +
                        ", page_stride " + n_str(cache.page_stride) +
                        ": expected page_stride >= page_rows * width > 0");
}

}  // namespace

template <class F>
void Backend::timed(const char* op, int64_t rows, int64_t n, int64_t k, F&& compute) {
  if (!profiler_) {
    compute();
    return;
  }
  synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  compute();
  synchronize();
  profiler_->record(op, rows, n, k,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void Backend::set_act_dtype(DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16)
    fail(ErrorCode::kInvalidArgument, std::string("backend ") + name() + ": activations cannot be " +
                                          dtype_name(dtype) + " (F32 or BF16)");
  if (dtype == DType::kBF16 && !supports_bf16_activations())
    fail(ErrorCode::kUnsupported,
         std::string("backend ") + name() + " has no bf16 activation kernels (its activations are fp32)");
  act_dtype_ = dtype;
}

OpCheck Backend::check(const char* op) const {
  return OpCheck(op, device(), supports_bf16_activations());
}

Tensor Backend::empty(DType dtype, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0)
    check("empty").fail("shape", "[" + n_str(rows) + ", " + n_str(cols) + "] is negative");
  return empty_impl(dtype, rows, cols);
}

void Backend::fill_zero(Tensor& t) {
  check("fill_zero").tensor("t", t, t.dtype);
  timed("fill_zero", t.rows, 0, 0, [&] { fill_zero_impl(t); });
}

Tensor Backend::weight(const TensorInfo& info, int64_t rows, int64_t cols) {
  const OpCheck c = check("weight");
  if (rows < 0 || cols < 0)
    c.fail(info.name.c_str(), "shape [" + n_str(rows) + ", " + n_str(cols) + "] is negative");
  if (static_cast<size_t>(rows * cols) * dtype_size(info.dtype) > info.nbytes)
    c.fail(info.name.c_str(), "holds " + std::to_string(info.nbytes) + " bytes, fewer than " +
                                  dtype_name(info.dtype) + " [" + n_str(rows) + ", " + n_str(cols) + "]");
  return weight_impl(info, rows, cols);
}

void Backend::copy_to_host(const Tensor& src, float* dst) {
  check("copy_to_host").act("src", src).that(dst || src.rows * src.cols == 0, "dst", "is null");
  timed("copy_to_host", src.rows, 0, 0, [&] { copy_to_host_impl(src, dst); });
}
void Backend::copy_to_host_i32(const Tensor& src, int32_t* dst) {
  check("copy_to_host_i32")
      .tensor("src", src, DType::kI32)
      .that(dst || src.rows * src.cols == 0, "dst", "is null");
  timed("copy_to_host", src.rows, 0, 0, [&] { copy_to_host_impl(src, dst); });
}
void Backend::copy_from_host(const float* src, Tensor& dst) {
  check("copy_from_host").act("dst", dst).that(src || dst.rows * dst.cols == 0, "src", "is null");
  timed("copy_from_host", dst.rows, 0, 0, [&] { copy_from_host_impl(src, dst); });
}
void Backend::copy_from_host_i32(const int32_t* src, Tensor& dst) {
  check("copy_from_host_i32")
      .tensor("dst", dst, DType::kI32)
      .that(src || dst.rows * dst.cols == 0, "src", "is null");
  timed("copy_from_host", dst.rows, 0, 0, [&] { copy_from_host_impl(src, dst); });
}

void Backend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  const OpCheck c = check("embedding");
  c.weight("table", table)
      .that(table.dtype != DType::kF8E4M3, "table", "is FP8 (an embedding has no block scales)");
  c.index("ids", ids).act("out", out, ids.rows, table.cols);
  timed("embedding", ids.rows, 0, 0, [&] { embedding_impl(table, ids, out); });
}

void Backend::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  const OpCheck c = check("rmsnorm");
  c.act("x", x).weight("w", w).that(w.dtype != DType::kF8E4M3, "w",
                                    "is FP8 (a norm weight has no block scales)");
  if (w.rows * w.cols != x.cols)
    c.fail("w", "is " + describe(w) + ", expected " + n_str(x.cols) + " elements (x's columns)");
  c.act("out", out, x.rows, x.cols);
  if (out.dtype != x.dtype) c.disjoint("out", out, "x", x);  // in place only in one type
  timed("rmsnorm", x.rows, 0, 0, [&] { rmsnorm_impl(x, w, eps, out); });
}

void Backend::linear(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) {
  const OpCheck c = check("linear");
  c.weight("w", w).act("x", x, kAny, w.k()).act("out", out, x.rows, w.n()).disjoint("out", out, "x", x);
  timed("linear", x.rows, w.n(), w.k(), [&] { linear_impl(x, w, out, mode); });
}

void Backend::rope(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
                   const Tensor& inv_freq, float attention_factor) {
  const OpCheck c = check("rope");
  if (heads < 0 || dim < 0 || dim % 2 != 0 || head_stride < dim)
    c.fail("dim", "heads " + n_str(heads) + ", head_stride " + n_str(head_stride) + ", dim " + n_str(dim) +
                      ": expected an even dim <= head_stride");
  c.act("x", x);
  if (heads > 0 && (heads - 1) * head_stride + dim > x.cols)
    c.fail("x", "is " + describe(x) + ", narrower than its " + n_str(heads) + " heads");
  c.index("positions", positions, x.rows).f32("inv_freq", inv_freq);
  if (inv_freq.rows * inv_freq.cols < dim / 2)
    c.fail("inv_freq", "is " + describe(inv_freq) + ", expected " + n_str(dim / 2) + " frequencies");
  timed("rope", x.rows, 0, 0,
        [&] { rope_impl(x, heads, head_stride, dim, positions, inv_freq, attention_factor); });
}

void Backend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  const OpCheck c = check("silu_mul");
  c.act("gate", gate).act("up", up, gate.rows, gate.cols).act("out", out, gate.rows, gate.cols);
  c.same_dtype("up", up, "gate", gate).same_dtype("out", out, "gate", gate);
  timed("silu_mul", gate.rows, 0, 0, [&] { silu_mul_impl(gate, up, out); });
}

void Backend::add(const Tensor& x, Tensor& y) {
  check("add").act("x", x).act("y", y, x.rows, x.cols);
  timed("add", x.rows, 0, 0, [&] { add_impl(x, y); });
}

void Backend::gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) {
  const OpCheck c = check("gather_rows");
  c.act("x", x).index("rows", rows).act("out", out, rows.rows, x.cols).disjoint("out", out, "x", x);
  timed("gather_rows", rows.rows, 0, 0, [&] { gather_rows_impl(x, rows, out); });
}

void Backend::attention_expanded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                                 const Tensor& positions, const Tensor& k_start, float scale, Tensor& out) {
  const OpCheck c = check("attention_expanded");
  if (heads <= 0 || q.cols % heads != 0 || v.cols % heads != 0)
    c.fail("heads", n_str(heads) + " does not divide q " + describe(q) + " and v " + describe(v));
  const int64_t t = q.rows;
  c.act("q", q).act("k", k, kAny, q.cols).act("v", v, k.rows).act("out", out, t, v.cols);
  c.same_dtype("k", k, "q", q).same_dtype("v", v, "q", q).same_dtype("out", out, "q", q);
  c.index("positions", positions, t).index("k_start", k_start, t);
  c.disjoint("out", out, "q", q).disjoint("out", out, "k", k).disjoint("out", out, "v", v);
  timed("attention_expanded", t, 0, 0,
        [&] { attention_expanded_impl(q, k, v, heads, positions, k_start, scale, out); });
}

void Backend::mla_absorb_q(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b, int64_t heads,
                           int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode) {
  const OpCheck c = check("mla_absorb_q");
  if (heads <= 0 || nope <= 0 || vdim < 0 || head_stride < nope)
    c.fail("heads", "heads " + n_str(heads) + ", nope " + n_str(nope) + ", vdim " + n_str(vdim) +
                        ", head_stride " + n_str(head_stride) +
                        ": expected positive sizes, nope <= head_stride");
  c.weight("kv_b", kv_b, heads * (nope + vdim));
  c.act("q_nope", q_nope);
  if ((heads - 1) * head_stride + nope > q_nope.cols)
    c.fail("q_nope", "is " + describe(q_nope) + ", narrower than its " + n_str(heads) + " heads");
  c.act("q_lat", q_lat, q_nope.rows, heads * kv_b.k()).disjoint("q_lat", q_lat, "q_nope", q_nope);
  timed("mla_absorb_q", q_nope.rows, q_lat.cols, heads * nope,
        [&] { mla_absorb_q_impl(q_nope, head_stride, kv_b, heads, nope, vdim, q_lat, mode); });
}

void Backend::mla_absorb_out(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                             int64_t vdim, Tensor& out, ActMode mode) {
  const OpCheck c = check("mla_absorb_out");
  if (heads <= 0 || nope < 0 || vdim <= 0)
    c.fail("heads", "heads " + n_str(heads) + ", nope " + n_str(nope) + ", vdim " + n_str(vdim) +
                        ": expected positive sizes");
  c.weight("kv_b", kv_b, heads * (nope + vdim));
  c.act("o_lat", o_lat, kAny, heads * kv_b.k()).act("out", out, o_lat.rows, heads * vdim);
  c.disjoint("out", out, "o_lat", o_lat);
  timed("mla_absorb_out", o_lat.rows, out.cols, o_lat.cols,
        [&] { mla_absorb_out_impl(o_lat, kv_b, heads, nope, vdim, out, mode); });
}

void Backend::attention_latent(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                               const LatentPool& cache, const PagedKv& kv, const Tensor& row_seq,
                               int64_t heads, int64_t lat, int64_t rope, const Tensor& positions, float scale,
                               Tensor& out) {
  const OpCheck c = check("attention_latent");
  if (heads <= 0 || lat <= 0 || rope < 0 || rope_head_stride < rope)
    c.fail("heads", "heads " + n_str(heads) + ", lat " + n_str(lat) + ", rope " + n_str(rope) +
                        ", rope_head_stride " + n_str(rope_head_stride) +
                        ": expected positive sizes, rope <= rope_head_stride");
  const int64_t t = q_lat.rows;
  c.act("q_lat", q_lat, kAny, heads * lat);
  c.act("q_rope", q_rope, t).same_dtype("q_rope", q_rope, "q_lat", q_lat);
  if ((heads - 1) * rope_head_stride + rope > q_rope.cols)
    c.fail("q_rope", "is " + describe(q_rope) + ", narrower than its " + n_str(heads) + " heads");
  check_pool(c, cache);
  if (cache.width != lat + rope)
    c.fail("cache", "rows are " + n_str(cache.width) + " wide, expected lat + rope = " + n_str(lat + rope));
  if (kv.seqs < 0 || kv.max_kv_len < 0) c.fail("kv", "has a negative sequence count or length");
  c.index("kv.indptr", kv.indptr);
  if (kv.indptr.rows < kv.seqs + 1)
    c.fail("kv.indptr", "is " + describe(kv.indptr) + ", expected " + n_str(kv.seqs + 1) + " rows");
  c.index("kv.pages", kv.pages);
  c.index("row_seq", row_seq, t).index("positions", positions, t);
  c.act("out", out, t, heads * lat)
      .same_dtype("out", out, "q_lat", q_lat)
      .disjoint("out", out, "q_lat", q_lat)
      .disjoint("out", out, "q_rope", q_rope);
  timed("attention_latent", t, 0, 0, [&] {
    attention_latent_impl(q_lat, q_rope, rope_head_stride, cache, kv, row_seq, heads, lat, rope, positions,
                          scale, out);
  });
}

void Backend::mla_expand_kv(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope,
                            int64_t vdim, Tensor& k, Tensor& v) {
  const OpCheck c = check("mla_expand_kv");
  if (heads <= 0 || nope < 0 || vdim < 0)
    c.fail("heads", "heads " + n_str(heads) + ", nope " + n_str(nope) + ", vdim " + n_str(vdim) +
                        ": expected positive sizes");
  const int64_t s = kvb.rows, rope = k_rope.cols;
  c.act("kvb", kvb, kAny, heads * (nope + vdim)).act("k_rope", k_rope, s);
  c.act("k", k, s, heads * (nope + rope)).act("v", v, s, heads * vdim).disjoint("k", k, "v", v);
  c.same_dtype("k_rope", k_rope, "kvb", kvb).same_dtype("k", k, "kvb", kvb).same_dtype("v", v, "kvb", kvb);
  timed("mla_expand_kv", s, 0, 0, [&] { mla_expand_kv_impl(kvb, k_rope, heads, nope, vdim, k, v); });
}

void Backend::cache_write(const Tensor& rows, const LatentPool& cache, const Tensor& slots) {
  const OpCheck c = check("cache_write");
  check_pool(c, cache);
  c.act("rows", rows, kAny, cache.width).index("slots", slots, rows.rows);
  timed("cache_write", rows.rows, 0, 0, [&] { cache_write_impl(rows, cache, slots); });
}

void Backend::cache_gather(const LatentPool& cache, const Tensor& slots, Tensor& out) {
  const OpCheck c = check("cache_gather");
  check_pool(c, cache);
  c.index("slots", slots).act("out", out, slots.rows, cache.width);
  timed("cache_gather", slots.rows, 0, 0, [&] { cache_gather_impl(cache, slots, out); });
}

void Backend::moe_route(const Tensor& logits, const Tensor& bias, const RoutingParams& p, Tensor& ids,
                        Tensor& weights) {
  const OpCheck c = check("moe_route");
  if (p.experts <= 0 || p.top_k <= 0 || p.top_k > p.experts)
    c.fail("p", "has experts " + n_str(p.experts) + ", top_k " + n_str(p.top_k) +
                    ": expected 0 < top_k <= experts");
  if (p.n_group <= 0 || p.experts % p.n_group != 0 || p.topk_group <= 0 || p.topk_group > p.n_group)
    c.fail("p", "has n_group " + n_str(p.n_group) + ", topk_group " + n_str(p.topk_group) +
                    ": expected equal groups of the experts and 0 < topk_group <= n_group");
  c.f32("logits", logits, kAny, p.experts).packed("logits", logits);
  if (!bias.empty()) {
    c.weight("bias", bias).that(bias.dtype != DType::kF8E4M3, "bias", "is FP8 (a bias has no block scales)");
    if (bias.rows * bias.cols != p.experts)
      c.fail("bias", "is " + describe(bias) + ", expected " + n_str(p.experts) + " values");
  }
  c.tensor("ids", ids, DType::kI32, logits.rows, p.top_k).packed("ids", ids);
  c.f32("weights", weights, logits.rows, p.top_k).packed("weights", weights);
  timed("moe_route", logits.rows, 0, 0, [&] { moe_route_impl(logits, bias, p, ids, weights); });
}

void Backend::moe_group(const Tensor& ids, const ExpertSet& set, MoeGrouping& g) {
  const OpCheck c = check("moe_group");
  c.tensor("ids", ids, DType::kI32).that(set.size() > 0 || ids.rows == 0, "set", "holds no experts");
  timed("moe_group", ids.rows, 0, 0, [&] { moe_group_impl(ids, set, g); });
}

void Backend::moe_expert_linear(const Tensor& x, const MoeGrouping& g, const ExpertSet& set, ExpertProj proj,
                                Tensor& out, ActMode mode) {
  const OpCheck c = check("moe_expert_linear");
  c.index("g.offsets", g.offsets, set.size() + 1).act("x", x, g.rows).act("out", out, g.rows);
  c.disjoint("out", out, "x", x);
  for (const ExpertWeights* e : set.experts) {
    if (!e) continue;
    const WeightMatrix& w = proj == ExpertProj::kGate ? e->gate : proj == ExpertProj::kUp ? e->up : e->down;
    c.weight("an expert's weight", w);
    if (w.k() > x.cols || w.n() > out.cols)
      c.fail("an expert's weight",
             "is " + describe(w.w) + ", wider than x " + describe(x) + " or out " + describe(out));
  }
  timed("moe_expert_linear", g.rows, out.cols, x.cols,
        [&] { moe_expert_linear_impl(x, g, set, proj, out, mode); });
}

void Backend::moe_combine(const Tensor& rows, const Tensor& slot_row, const Tensor& weights,
                          const Tensor& order, Tensor& out) {
  const OpCheck c = check("moe_combine");
  const int64_t t = out.rows, k = slot_row.cols;
  c.act("out", out).tensor("slot_row", slot_row, DType::kI32, t).f32("weights", weights, t, k);
  c.tensor("order", order, DType::kI32, t, k);
  if (!rows.empty()) c.act("rows", rows, kAny, out.cols).disjoint("out", out, "rows", rows);
  timed("moe_combine", t, 0, 0, [&] { moe_combine_impl(rows, slot_row, weights, order, out); });
}

void Backend::sample(const Tensor& logits, const std::vector<SampleRow>& rows, const SampleTable* packed,
                     int32_t* ids) {
  const OpCheck c = check("sample");
  c.f32("logits", logits, static_cast<int64_t>(rows.size())).that(ids || rows.empty(), "ids", "is null");
  for (const SampleRow& r : rows) c.that(r.rng != nullptr, "rows", "hold a row without its RNG");
  if (packed && packed->rows != logits.rows)
    c.fail("packed",
           "holds " + n_str(packed->rows) + " rows, expected " + n_str(logits.rows) + " (the logits')");
  timed("sample", logits.rows, 0, 0, [&] { sample_impl(logits, rows, packed, ids); });
}

}  // namespace moert
