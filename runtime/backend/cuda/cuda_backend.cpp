// The CUDA backend: unwraps tensors into raw device pointers and calls kernels/cuda, as cpu_backend.cpp does
// with kernels/cpu. One stream; every op is queued on it, copies to the host synchronise it.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/block_cache.h"
#include "cuda/cuda_kernels.h"
#include "util/error.h"
#include "weights/safetensors.h"

namespace moert {
namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    fail(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice,
         std::string("cuda backend: ") + what + ": " + cudaGetErrorString(e));
}

void check(bool ok, const char* what) {
  if (!ok) fail(ErrorCode::kInternal, std::string("cuda backend: shape mismatch in ") + what);
}

int wtype(DType t) {
  switch (t) {
    case DType::kF32: return cuda::kWF32;
    case DType::kBF16: return cuda::kWBF16;
    case DType::kF16: return cuda::kWF16;
    case DType::kF8E4M3: return cuda::kWF8;
    default: fail(ErrorCode::kInternal, std::string("cuda backend: unsupported weight dtype ") + dtype_name(t));
  }
}

cuda::DevWeight dev(const Tensor& w) {
  cuda::DevWeight d;
  d.type = wtype(w.dtype);
  d.data = w.data;
  d.n = w.rows;
  d.k = w.cols;
  d.ld = w.ld;
  return d;
}

cuda::DevWeight dev(const WeightMatrix& m) {
  cuda::DevWeight d = dev(m.w);
  if (m.fp8()) {
    d.scale = m.scale.ptr<const float>();
    d.scale_ld = m.scale.ld;
    d.row0 = m.row0;
  }
  return d;
}

// A caching device allocator: freed blocks are kept per size class and handed out again. All work runs on
// one stream, so a block freed by the host while queued kernels still use it is only reused by later work.
class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  explicit DevicePool(int device) : device_(device) {}
  ~DevicePool() { cache_.drain([](void* p) { cudaFree(p); }); }
  std::shared_ptr<void> allocate(size_t bytes) {
    const size_t cls = BlockCache::size_class(std::max<size_t>(bytes, 256));
    void* p = cache_.take(cls);
    if (!p) {
      cudaError_t e = cudaMalloc(&p, cls);
      if (e != cudaSuccess) {  // give the cached blocks back and retry once
        (void)cudaGetLastError();
        trim();
        e = cudaMalloc(&p, cls);
      }
      check_cuda(e, "cudaMalloc");
    }
    std::shared_ptr<DevicePool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, cls](void* q) {
      if (!self->cache_.give(q, cls, SIZE_MAX)) cudaFree(q);
    });
  }
  void trim() {
    cudaDeviceSynchronize();
    cache_.drain([](void* p) { cudaFree(p); });
  }

 private:
  int device_;
  BlockCache cache_;
};

enum class GemmPolicy { kAuto, kOwn, kLt };

GemmPolicy policy_from_env() {
  const char* v = std::getenv("MOERT_CUDA_GEMM");
  if (!v) return GemmPolicy::kAuto;
  if (std::strcmp(v, "own") == 0) return GemmPolicy::kOwn;
  if (std::strcmp(v, "lt") == 0) return GemmPolicy::kLt;
  return GemmPolicy::kAuto;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      fail(ErrorCode::kDevice, "cuda backend: no CUDA device is available");
    }
    if (device < 0 || device >= count)
      fail(ErrorCode::kInvalidArgument, "cuda backend: device index " + std::to_string(device) + " is not in [0, " +
                                            std::to_string(count) + ")");
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    pool_ = std::make_shared<DevicePool>(device);
    lt_ = std::make_unique<cuda::LtGemm>();
    policy_ = policy_from_env();
  }
  ~CudaBackend() override {
    cudaSetDevice(device_);
    if (stream_) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }

  const char* name() const override { return "cuda"; }
  DeviceKind device() const override { return DeviceKind::kCuda; }

  Tensor empty(DType dtype, int64_t rows, int64_t cols) override {
    select();
    Tensor t;
    t.dtype = dtype;
    t.device = DeviceKind::kCuda;
    t.rows = rows;
    t.cols = cols;
    t.ld = cols;
    t.owner = pool_->allocate(static_cast<size_t>(std::max<int64_t>(rows * cols, 1)) * dtype_size(dtype));
    t.data = t.owner.get();
    return t;
  }

  void fill_zero(Tensor& t) override {
    select();
    if (t.rows <= 0 || t.cols <= 0) return;
    const size_t es = dtype_size(t.dtype);
    check_cuda(cudaMemset2DAsync(t.data, t.ld * es, 0, t.cols * es, t.rows, stream_), "fill_zero");
  }

  Tensor weight(const TensorInfo& info, int64_t rows, int64_t cols) override {
    select();
    const size_t es = dtype_size(info.dtype);
    check(static_cast<size_t>(rows * cols) * es <= info.nbytes, "weight (size)");
    Tensor t;
    t.dtype = info.dtype;
    t.device = DeviceKind::kCuda;
    t.rows = rows;
    t.cols = cols;
    // F32 matrices (the FP8 block scales) get rows padded to 16 bytes, as cuBLASLt's BLK128x128 scales need.
    t.ld = (info.dtype == DType::kF32 && rows > 1) ? (cols + 3) / 4 * 4 : cols;
    void* p = nullptr;
    check_cuda(cudaMalloc(&p, std::max<size_t>(static_cast<size_t>(rows * t.ld) * es, 256)), "cudaMalloc (weight)");
    t.owner = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    t.data = p;
    check_cuda(cudaMemcpy2DAsync(p, t.ld * es, info.data, cols * es, cols * es, rows, cudaMemcpyHostToDevice, stream_),
               "weight upload");
    check_cuda(cudaStreamSynchronize(stream_), "weight upload");
    return t;
  }

  void copy_to_host(const Tensor& src, float* dst) override {
    check(src.dtype == DType::kF32, "copy_to_host");
    download(src, dst);
  }
  void copy_to_host_i32(const Tensor& src, int32_t* dst) override {
    check(src.dtype == DType::kI32, "copy_to_host_i32");
    download(src, dst);
  }
  void copy_from_host(const float* src, Tensor& dst) override {
    check(dst.dtype == DType::kF32, "copy_from_host");
    upload(src, dst, 4);
  }
  void copy_from_host_i32(const int32_t* src, Tensor& dst) override {
    check(dst.dtype == DType::kI32, "copy_from_host_i32");
    upload(src, dst, 4);
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    select();
    check(out.rows == ids.rows && out.cols == table.cols && ids.ld == 1, "embedding");
    check_cuda(cuda::dequant_rows(dev(table), ids.ptr<int32_t>(), ids.rows, 0, table.cols, out.ptr<float>(), out.ld,
                                  stream_),
               "embedding");
  }

  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    select();
    check(x.cols == w.cols * w.rows && out.cols == x.cols && out.rows == x.rows, "rmsnorm");
    check_cuda(cuda::rmsnorm(x.ptr<float>(), x.rows, x.ld, x.cols, w.data, wtype(w.dtype), eps, out.ptr<float>(),
                             out.ld, stream_),
               "rmsnorm");
  }

  void linear(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) override {
    select();
    check(x.cols == w.k() && out.cols == w.n() && out.rows == x.rows, "linear");
    gemm(x, x.ld, dev(w), out, mode);
  }

  void rope(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
            const std::vector<float>& inv_freq, float attention_factor) override {
    select();
    check(positions.rows == x.rows && static_cast<int64_t>(inv_freq.size()) == dim / 2, "rope");
    const float* f = device_inv_freq(inv_freq);
    check_cuda(cuda::rope_interleaved(x.ptr<float>(), x.rows, x.ld, heads, head_stride, dim, positions.ptr<int32_t>(),
                                      f, attention_factor, stream_),
               "rope");
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    select();
    check(gate.rows == up.rows && gate.cols == up.cols && out.cols == gate.cols && out.rows == gate.rows, "silu_mul");
    check_cuda(cuda::silu_mul(gate.ptr<float>(), gate.ld, up.ptr<float>(), up.ld, gate.rows, gate.cols,
                              out.ptr<float>(), out.ld, stream_),
               "silu_mul");
  }

  void add(const Tensor& x, Tensor& y) override {
    select();
    check(x.rows == y.rows && x.cols == y.cols, "add");
    check_cuda(cuda::add_inplace(x.ptr<float>(), x.ld, x.rows, x.cols, y.ptr<float>(), y.ld, stream_), "add");
  }

  void attention_expanded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, const Tensor& positions,
                          float scale, Tensor& out) override {
    select();
    const int64_t dqk = q.cols / heads, dv = v.cols / heads;
    check(k.cols == q.cols && out.cols == v.cols && k.rows == v.rows && positions.rows == q.rows, "attention_expanded");
    check_cuda(cuda::attention_expanded(q.ptr<float>(), q.rows, q.ld, k.ptr<float>(), k.ld, v.ptr<float>(), v.ld,
                                        k.rows, heads, dqk, dv, positions.ptr<int32_t>(), scale, out.ptr<float>(),
                                        out.ld, stream_),
               "attention_expanded");
  }

  void mla_absorb_q(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                    int64_t vdim, Tensor& q_lat, ActMode mode) override {
    select();
    const int64_t lat = kv_b.k(), T = q_nope.rows;
    check(q_lat.cols == heads * lat && q_lat.rows == T && q_lat.ld % 1 == 0, "mla_absorb_q");
    // q_lat[:, h] = q_nope[:, h] @ W[h*(nope+vdim) .. + nope, :]  (x @ W, batched over heads)
    const float* xin = q_nope.ptr<float>();
    int64_t ldx = q_nope.ld, x_bs = head_stride;
    Tensor quant;
    if (mode == ActMode::kFp8 && kv_b.fp8()) {
      quant = empty(DType::kF32, T, heads * nope);
      check_cuda(cuda::act_quant_dequant(xin, T, ldx, heads, head_stride, nope, quant.ptr<float>(), quant.ld, stream_),
                 "act_quant_dequant");
      xin = quant.ptr<float>();
      ldx = quant.ld;
      x_bs = nope;
    }
    cuda::GemmBatch b;
    b.batch = heads;
    b.x_bs = x_bs;
    b.w_row_bs = nope + vdim;
    b.y_bs = lat;
    ++stats_.tiled;
    check_cuda(cuda::gemm_f32(xin, T, ldx, dev(kv_b), false, lat, nope, q_lat.ptr<float>(), q_lat.ld, b, stream_),
               "mla_absorb_q");
  }

  void mla_absorb_out(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope, int64_t vdim,
                      Tensor& out, ActMode mode) override {
    select();
    const int64_t lat = kv_b.k(), T = o_lat.rows;
    check(o_lat.cols == heads * lat && out.cols == heads * vdim && out.rows == T, "mla_absorb_out");
    // out[:, h] = o_lat[:, h] @ W[h*(nope+vdim) + nope .. + vdim, :]^T
    const float* xin = o_lat.ptr<float>();
    int64_t ldx = o_lat.ld;
    Tensor quant;
    if (mode == ActMode::kFp8 && kv_b.fp8()) {
      quant = empty(DType::kF32, T, heads * lat);
      check_cuda(cuda::act_quant_dequant(xin, T, ldx, heads, lat, lat, quant.ptr<float>(), quant.ld, stream_),
                 "act_quant_dequant");
      xin = quant.ptr<float>();
      ldx = quant.ld;
    }
    cuda::GemmBatch b;
    b.batch = heads;
    b.x_bs = lat;
    b.w_row_bs = nope + vdim;
    b.y_bs = vdim;
    cuda::DevWeight w = dev(kv_b.rows(nope, vdim));
    ++stats_.tiled;
    check_cuda(cuda::gemm_f32(xin, T, ldx, w, true, vdim, lat, out.ptr<float>(), out.ld, b, stream_),
               "mla_absorb_out");
  }

  void attention_latent(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                        const LatentCacheView& cache, int64_t heads, int64_t lat, int64_t rope, const Tensor& positions,
                        float scale, Tensor& out) override {
    select();
    check(q_lat.cols == heads * lat && q_rope.cols >= (heads - 1) * rope_head_stride + rope &&
              out.cols == heads * lat && positions.rows == q_lat.rows,
          "attention_latent");
    if (q_lat.rows <= 0) return;
    // The highest position decides how much of the page table the kernel may read.
    std::vector<int32_t> pos(static_cast<size_t>(q_lat.rows));
    check_cuda(cudaMemcpy2DAsync(pos.data(), 4, positions.data, positions.ld * 4, 4, positions.rows,
                                 cudaMemcpyDeviceToHost, stream_),
               "attention_latent (positions)");
    check_cuda(cudaStreamSynchronize(stream_), "attention_latent (positions)");
    const int64_t n = static_cast<int64_t>(*std::max_element(pos.begin(), pos.end())) + 1;
    const cuda::DevPaged pg = paged(cache, n);
    check_cuda(cuda::attention_latent(q_lat.ptr<float>(), q_lat.ld, q_rope.ptr<float>(), q_rope.ld, rope_head_stride,
                                      q_lat.rows, pg, lat, rope, heads, positions.ptr<int32_t>(), scale,
                                      out.ptr<float>(), out.ld, stream_),
               "attention_latent");
  }

  void mla_expand_kv(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope, int64_t vdim, Tensor& k,
                     Tensor& v) override {
    select();
    const int64_t rope = k_rope.cols, s = kvb.rows;
    check(kvb.cols == heads * (nope + vdim) && k.cols == heads * (nope + rope) && v.cols == heads * vdim &&
              k.rows == s && v.rows == s && k_rope.rows == s,
          "mla_expand_kv");
    check_cuda(cuda::mla_expand_kv(kvb.ptr<float>(), kvb.ld, k_rope.ptr<float>(), k_rope.ld, s, heads, nope, rope, vdim,
                                   k.ptr<float>(), k.ld, v.ptr<float>(), v.ld, stream_),
               "mla_expand_kv");
  }

  void cache_write(const Tensor& rows, const LatentCacheView& cache, int64_t pos0) override {
    select();
    if (rows.rows <= 0) return;
    const cuda::DevPaged pg = paged(cache, pos0 + rows.rows);
    check_cuda(cuda::cache_write(rows.ptr<float>(), rows.ld, rows.rows, rows.cols, pg, pos0, stream_), "cache_write");
  }

  void cache_read(const LatentCacheView& cache, int64_t n, Tensor& out) override {
    select();
    check(out.rows >= n, "cache_read");
    if (n <= 0) return;
    const cuda::DevPaged pg = paged(cache, n);
    check_cuda(cuda::cache_read(pg, n, out.cols, out.ptr<float>(), out.ld, stream_), "cache_read");
  }

  void moe_route(const Tensor& logits, const Tensor& bias, const RouterConfig& cfg, Tensor& ids,
                 Tensor& weights) override {
    select();
    check(logits.cols == cfg.experts && ids.cols == cfg.top_k && weights.cols == cfg.top_k &&
              logits.ld == logits.cols && ids.rows == logits.rows && weights.rows == logits.rows,
          "moe_route");
    auto p = cfg.to_kernel_params<cuda::RouteParams>();
    Tensor b;
    if (!bias.empty()) {
      b = empty(DType::kF32, 1, cfg.experts);
      check_cuda(cuda::dequant_rows(dev(bias), nullptr, 1, 0, cfg.experts, b.ptr<float>(), b.ld, stream_),
                 "moe_route (bias)");
      p.bias = b.ptr<float>();
    }
    check_cuda(cuda::moe_route(logits.ptr<float>(), logits.rows, p, ids.ptr<int32_t>(), ids.ld, weights.ptr<float>(),
                               weights.ld, stream_),
               "moe_route");
  }

  void moe_experts(const Tensor& x, const Tensor& ids, const Tensor& weights,
                   const std::vector<const ExpertWeights*>& experts, Tensor& out, ActMode mode) override {
    select();
    const int64_t t = x.rows, top_k = ids.cols, hidden = x.cols;
    check(out.rows == t && out.cols == hidden && ids.rows == t && weights.rows == t && weights.cols == top_k,
          "moe_experts");
    if (t <= 0) return;
    // The routing decisions come to the host; rows are grouped by expert on the device (one gather), each
    // expert runs its MLP on its contiguous rows, and one combine kernel sums each token's top-k outputs.
    std::vector<int32_t> ids_h(static_cast<size_t>(t * top_k));
    check_cuda(cudaMemcpy2DAsync(ids_h.data(), top_k * 4, ids.data, ids.ld * 4, top_k * 4, t, cudaMemcpyDeviceToHost,
                                 stream_),
               "moe_experts (ids)");
    check_cuda(cudaStreamSynchronize(stream_), "moe_experts (ids)");
    const int64_t E = static_cast<int64_t>(experts.size());
    std::vector<int64_t> count(E + 1, 0);
    for (int32_t e : ids_h) {
      check(e >= 0 && e < E, "moe_experts (expert id)");
      if (experts[e]) ++count[e];
    }
    std::vector<int64_t> offset(E + 1, 0);
    for (int64_t e = 0; e < E; ++e) offset[e + 1] = offset[e] + count[e];
    const int64_t R = offset[E];
    // host table: [R] token of each row, then [t * top_k] row of each (token, slot) or -1
    std::vector<int32_t> table(static_cast<size_t>(R + t * top_k), -1);
    std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
    for (int64_t i = 0; i < t; ++i)
      for (int64_t s = 0; s < top_k; ++s) {
        const int32_t e = ids_h[i * top_k + s];
        if (!experts[e]) continue;
        const int64_t r = fill[e]++;
        table[r] = static_cast<int32_t>(i);
        table[R + i * top_k + s] = static_cast<int32_t>(r);
      }
    Tensor tab = empty(DType::kI32, 1, static_cast<int64_t>(table.size()));
    check_cuda(cudaMemcpyAsync(tab.data, table.data(), table.size() * 4, cudaMemcpyHostToDevice, stream_),
               "moe_experts (table)");
    check_cuda(cudaStreamSynchronize(stream_), "moe_experts (table)");
    const int32_t* row_token = tab.ptr<int32_t>();
    const int32_t* slot_row = tab.ptr<int32_t>() + R;
    Tensor y;
    if (R > 0) {
      int64_t inter_max = 0;
      for (int64_t e = 0; e < E; ++e)
        if (count[e] && experts[e]) inter_max = std::max(inter_max, experts[e]->gate.n());
      Tensor xin = empty(DType::kF32, R, hidden);
      y = empty(DType::kF32, R, hidden);
      Tensor g = empty(DType::kF32, R, inter_max), u = empty(DType::kF32, R, inter_max);
      cuda::DevWeight xw;
      xw.type = cuda::kWF32;
      xw.data = x.data;
      xw.n = x.rows;
      xw.k = x.cols;
      xw.ld = x.ld;
      check_cuda(cuda::dequant_rows(xw, row_token, R, 0, hidden, xin.ptr<float>(), xin.ld, stream_),
                 "moe_experts (gather)");
      for (int64_t e = 0; e < E; ++e) {
        if (!count[e] || !experts[e]) continue;
        const ExpertWeights& ew = *experts[e];
        const int64_t inter = ew.gate.n();
        Tensor xe = xin.slice_rows(offset[e], count[e]), ye = y.slice_rows(offset[e], count[e]);
        Tensor ge = g.slice_rows(offset[e], count[e]).slice_cols(0, inter);
        Tensor ue = u.slice_rows(offset[e], count[e]).slice_cols(0, inter);
        linear(xe, ew.gate, ge, mode);
        linear(xe, ew.up, ue, mode);
        silu_mul(ge, ue, ge);
        linear(ge, ew.down, ye, mode);
      }
    }
    check_cuda(cuda::moe_combine(R > 0 ? y.ptr<float>() : nullptr, hidden, slot_row, weights.ptr<float>(), weights.ld,
                                 t, top_k, hidden, out.ptr<float>(), out.ld, stream_),
               "moe_experts (combine)");
  }

  void synchronize() {
    select();
    check_cuda(cudaStreamSynchronize(stream_), "synchronize");
  }
  CudaGemmStats stats() const { return stats_; }

 private:
  void select() { check_cuda(cudaSetDevice(device_), "cudaSetDevice"); }

  // Packed host copy of a 4-byte tensor (F32 or I32).
  void download(const Tensor& src, void* dst) {
    select();
    if (src.rows <= 0 || src.cols <= 0) return;
    check_cuda(cudaMemcpy2DAsync(dst, src.cols * 4, src.data, src.ld * 4, src.cols * 4, src.rows,
                                 cudaMemcpyDeviceToHost, stream_),
               "copy_to_host");
    check_cuda(cudaStreamSynchronize(stream_), "copy_to_host");
  }
  void upload(const void* src, Tensor& dst, size_t es) {
    select();
    if (dst.rows <= 0 || dst.cols <= 0) return;
    check_cuda(cudaMemcpy2DAsync(dst.data, dst.ld * es, src, dst.cols * es, dst.cols * es, dst.rows,
                                 cudaMemcpyHostToDevice, stream_),
               "copy_from_host");
    check_cuda(cudaStreamSynchronize(stream_), "copy_from_host");
  }

  // The cache view with its page table on the device (the first ceil(n / page_rows) entries).
  cuda::DevPaged paged(const LatentCacheView& cache, int64_t n) {
    const int64_t pages = (n + cache.page_rows - 1) / cache.page_rows;
    Tensor table = empty(DType::kI32, 1, std::max<int64_t>(pages, 1));
    check_cuda(cudaMemcpyAsync(table.data, cache.page_table, pages * 4, cudaMemcpyHostToDevice, stream_),
               "page table upload");
    check_cuda(cudaStreamSynchronize(stream_), "page table upload");
    page_tables_.push_back(table);  // alive until the next op that needs a table after a sync
    if (page_tables_.size() > 64) page_tables_.erase(page_tables_.begin(), page_tables_.end() - 32);
    cuda::DevPaged p;
    p.base = cache.pool.ptr<float>();
    p.table = table.ptr<int32_t>();
    p.page_rows = cache.page_rows;
    p.page_stride = cache.page_stride;
    return p;
  }

  const float* device_inv_freq(const std::vector<float>& f) {
    if (f != inv_freq_host_ || inv_freq_.empty()) {
      inv_freq_ = empty(DType::kF32, 1, static_cast<int64_t>(std::max<size_t>(f.size(), 1)));
      if (!f.empty())
        check_cuda(cudaMemcpyAsync(inv_freq_.data, f.data(), f.size() * 4, cudaMemcpyHostToDevice, stream_),
                   "rope (inv_freq)");
      check_cuda(cudaStreamSynchronize(stream_), "rope (inv_freq)");
      inv_freq_host_ = f;
    }
    return inv_freq_.ptr<float>();
  }

  // y = x @ W^T with x [m, k] (row stride ldx).
  void gemm(const Tensor& x, int64_t ldx, const cuda::DevWeight& w, Tensor& out, ActMode mode) {
    const int64_t m = x.rows;
    if (m <= 0) return;
    const float* xin = x.ptr<float>();
    const bool fp8 = mode == ActMode::kFp8 && w.type == cuda::kWF8;
    if (fp8) {
      const bool try_lt = policy_ == GemmPolicy::kLt || (policy_ == GemmPolicy::kAuto && m > 16);
      if (try_lt && lt_->ok() && w.row0 % 128 == 0) {
        const int64_t tiles = (w.k + 127) / 128;
        Tensor q = empty(DType::kU8, m, w.k), sc = empty(DType::kF32, tiles, m);
        check_cuda(cuda::act_quant(xin, m, ldx, w.k, q.ptr<uint8_t>(), w.k, sc.ptr<float>(), m, stream_), "act_quant");
        const char* err = nullptr;
        if (lt_->fp8_block_scaled(q.ptr<uint8_t>(), sc.ptr<float>(), m, w, out.ptr<float>(), out.ld, stream_, &err)) {
          ++stats_.lt_fp8;
          return;
        }
        if (err && !lt_warned_) {
          std::fprintf(stderr, "moert cuda backend: cublasLtMatmul failed (%s); using the own FP8 path\n", err);
          lt_warned_ = true;
        }
        ++stats_.lt_fallbacks;
      }
      // The reference numerics: the quantised activations' round trip, then an fp32 product.
      Tensor xq = empty(DType::kF32, m, w.k);
      check_cuda(cuda::act_quant_dequant(xin, m, ldx, 1, w.k, w.k, xq.ptr<float>(), xq.ld, stream_),
                 "act_quant_dequant");
      f32_gemm(xq.ptr<float>(), m, xq.ld, w, out);
      return;
    }
    f32_gemm(xin, m, ldx, w, out);
  }

  void f32_gemm(const float* x, int64_t m, int64_t ldx, const cuda::DevWeight& w, Tensor& out) {
    if (m <= 16) {
      const cudaError_t e = cuda::gemm_small_m(x, m, ldx, w, out.ptr<float>(), out.ld, stream_);
      if (e == cudaSuccess) {
        ++stats_.small_m;
        return;
      }
      if (e != cudaErrorNotSupported) check_cuda(e, "gemm_small_m");
    }
    ++stats_.tiled;
    check_cuda(cuda::gemm_f32(x, m, ldx, w, true, w.n, w.k, out.ptr<float>(), out.ld, cuda::GemmBatch{}, stream_),
               "gemm_f32");
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<DevicePool> pool_;
  std::unique_ptr<cuda::LtGemm> lt_;
  GemmPolicy policy_ = GemmPolicy::kAuto;
  std::vector<Tensor> page_tables_;
  std::vector<float> inv_freq_host_;
  Tensor inv_freq_;
  CudaGemmStats stats_;
  bool lt_warned_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device_index) { return std::make_unique<CudaBackend>(device_index); }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

void cuda_synchronize(Backend& backend) {
  if (auto* b = dynamic_cast<CudaBackend*>(&backend)) b->synchronize();
}

CudaGemmStats cuda_gemm_stats(const Backend& backend) {
  if (auto* b = dynamic_cast<const CudaBackend*>(&backend)) return b->stats();
  return {};
}

}  // namespace moert
