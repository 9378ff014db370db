// The CUDA backend: unwraps tensors into raw device pointers and calls kernels/cuda, as cpu_backend.cpp does
// with kernels/cpu. One stream; every op is queued on it, copies to the host synchronise it.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
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
#include "backend/finite_check.h"
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

// A failed check of what only this backend requires (its own limits); the arguments' shapes were checked by
// Backend's op (backend.cpp).
[[noreturn]] void fail_op(const char* op, const std::string& what) {
  fail(ErrorCode::kInternal, std::string("backend op ") + op + ": " + what);
}

// The backend's op checked the dtype (a weight type).
cuda::DevWeight dev(const Tensor& w) {
  cuda::DevWeight d;
  d.type = w.dtype;
  d.data = w.data;
  d.n = w.rows;
  d.k = w.cols;
  d.ld = w.ld;
  return d;
}

// An activation operand (the backend's op checked it is F32 or BF16).
cuda::DevAct act(const Tensor& t) {
  cuda::DevAct a;
  a.data = t.data;
  a.ld = t.ld;
  a.bf16 = t.dtype == DType::kBF16;
  return a;
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
  ~DevicePool() {
    cache_.drain([](void* p) { cudaFree(p); });
  }
  std::shared_ptr<void> allocate(size_t bytes) {
    const size_t cls = BlockCache::size_class(std::max<size_t>(bytes, 256));
    void* p = cache_.take(cls);
    if (!p && capturing_) {
      // A miss during a graph capture: cudaMalloc is allowed under the relaxed capture mode (it is not
      // recorded); no trim here (it would synchronise inside the capture).
      cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
      cudaThreadExchangeStreamCaptureMode(&mode);
      const cudaError_t e = cudaMalloc(&p, cls);
      cudaThreadExchangeStreamCaptureMode(&mode);
      check_cuda(e, "cudaMalloc (during a graph capture)");
    } else if (!p) {
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
    ++generation_;  // captured graphs may have pointed into what was just freed
  }
  int64_t generation() const { return generation_; }
  void set_capturing(bool on) { capturing_ = on; }

 private:
  int device_;
  BlockCache cache_;
  std::atomic<int64_t> generation_{0};
  bool capturing_ = false;  // the backend's thread only (the model's step)
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
      fail(ErrorCode::kInvalidArgument, "cuda backend: device index " + std::to_string(device) +
                                            " is not in [0, " + std::to_string(count) + ")");
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
    for (PinnedBlock& b : pinned_) {
      if (b.ptr) cudaFreeHost(b.ptr);
      if (b.event) cudaEventDestroy(b.event);
    }
  }

  const char* name() const override { return "cuda"; }
  DeviceKind device() const override { return DeviceKind::kCuda; }
  bool supports_bf16_activations() const override { return true; }

 protected:
  Tensor empty_impl(DType dtype, int64_t rows, int64_t cols) override {
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

  void fill_zero_impl(Tensor& t) override {
    select();
    if (t.rows <= 0 || t.cols <= 0) return;
    const size_t es = dtype_size(t.dtype);
    check_cuda(cudaMemset2DAsync(t.data, t.ld * es, 0, t.cols * es, t.rows, stream_), "fill_zero");
  }

  Tensor weight_impl(const TensorInfo& info, int64_t rows, int64_t cols) override {
    select();
    const size_t es = dtype_size(info.dtype);
    Tensor t;
    t.dtype = info.dtype;
    t.device = DeviceKind::kCuda;
    t.rows = rows;
    t.cols = cols;
    // F32 matrices (the FP8 block scales) get rows padded to 16 bytes, as cuBLASLt's BLK128x128 scales need,
    // whatever their row count (a weight of N <= 128 rows has one scale row).
    t.ld = info.dtype == DType::kF32 ? (cols + 3) / 4 * 4 : cols;
    void* p = nullptr;
    check_cuda(cudaMalloc(&p, std::max<size_t>(static_cast<size_t>(rows * t.ld) * es, 256)),
               "cudaMalloc (weight)");
    t.owner = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    t.data = p;
    check_cuda(cudaMemcpy2DAsync(p, t.ld * es, info.data, cols * es, cols * es, rows, cudaMemcpyHostToDevice,
                                 stream_),
               "weight upload");
    check_cuda(cudaStreamSynchronize(stream_), "weight upload");
    ++counters_.uploads;
    ++counters_.syncs;
    return t;
  }

  // BF16 tensors cross as fp32: widened on the device before the download, rounded on the device after the
  // upload (a temporary F32 tensor; the copy's order on the stream keeps it alive long enough).
  void copy_to_host_impl(const Tensor& src, void* dst) override {
    if (src.dtype != DType::kBF16) return download(src, dst);
    select();
    Tensor wide = empty(DType::kF32, src.rows, src.cols);
    convert(src, wide);
    download(wide, dst);
  }
  void copy_from_host_impl(const void* src, Tensor& dst) override {
    if (dst.dtype != DType::kBF16) return upload(src, dst, 4);
    select();
    Tensor wide = empty(DType::kF32, dst.rows, dst.cols);
    upload(src, wide, 4);
    convert(wide, dst);
  }

  void embedding_impl(const Tensor& table, const Tensor& ids, Tensor& out) override {
    select();
    check_cuda(cuda::dequant_rows(dev(table), ids.ptr<int32_t>(), ids.rows, 0, table.cols, act(out), stream_),
               "embedding");
  }

  void rmsnorm_impl(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    select();
    check_cuda(cuda::rmsnorm(act(x), x.rows, x.cols, w.data, w.dtype, eps, act(out), stream_), "rmsnorm");
  }

  void linear_impl(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) override {
    select();
    gemm(x, dev(w), out, mode);
  }

  void rope_impl(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
                 const Tensor& inv_freq, float attention_factor) override {
    select();
    check_cuda(cuda::rope_interleaved(act(x), x.rows, heads, head_stride, dim, positions.ptr<int32_t>(),
                                      inv_freq.ptr<float>(), attention_factor, stream_),
               "rope");
  }

  void gather_rows_impl(const Tensor& x, const Tensor& rows, Tensor& out) override {
    select();
    // x (F32 or BF16) read as a weight of its type: the rows converted to out's type on the way.
    check_cuda(cuda::dequant_rows(dev(x), rows.ptr<int32_t>(), rows.rows, 0, x.cols, act(out), stream_),
               "gather_rows");
  }

  void silu_mul_impl(const Tensor& gate, const Tensor& up, Tensor& out) override {
    select();
    check_cuda(cuda::silu_mul(act(gate), act(up), gate.rows, gate.cols, act(out), stream_), "silu_mul");
  }

  void add_impl(const Tensor& x, Tensor& y) override {
    select();
    check_cuda(cuda::add_inplace(act(x), x.rows, x.cols, act(y), stream_), "add");
  }

  void attention_expanded_impl(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                               const Tensor& positions, const Tensor& k_start, float scale,
                               Tensor& out) override {
    select();
    const int64_t dqk = q.cols / heads, dv = v.cols / heads;
    check_cuda(cuda::attention_expanded(act(q), q.rows, act(k), act(v), k_start.ptr<int32_t>(), heads, dqk,
                                        dv, positions.ptr<int32_t>(), scale, act(out), stream_),
               "attention_expanded");
  }

  void mla_absorb_q_impl(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b, int64_t heads,
                         int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode) override {
    select();
    const int64_t lat = kv_b.k(), T = q_nope.rows;
    // q_lat[:, h] = q_nope[:, h] @ W[h*(nope+vdim) .. + nope, :]  (x @ W, batched over heads)
    cuda::DevAct xin = act(q_nope);
    int64_t x_bs = head_stride;
    Tensor quant;
    if (mode == ActMode::kFp8 && kv_b.fp8()) {
      quant = empty(DType::kF32, T, heads * nope);
      check_cuda(
          cuda::act_quant_dequant(xin, T, heads, head_stride, nope, quant.ptr<float>(), quant.ld, stream_),
          "act_quant_dequant");
      xin = act(quant);
      x_bs = nope;
    }
    cuda::GemmBatch b;
    b.batch = heads;
    b.x_bs = x_bs;
    b.w_row_bs = nope + vdim;
    b.y_bs = lat;
    ++stats_.tiled;
    check_cuda(cuda::gemm_f32(xin, T, dev(kv_b), false, lat, nope, act(q_lat), b, stream_), "mla_absorb_q");
  }

  void mla_absorb_out_impl(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                           int64_t vdim, Tensor& out, ActMode mode) override {
    select();
    const int64_t lat = kv_b.k(), T = o_lat.rows;
    // out[:, h] = o_lat[:, h] @ W[h*(nope+vdim) + nope .. + vdim, :]^T
    cuda::DevAct xin = act(o_lat);
    Tensor quant;
    if (mode == ActMode::kFp8 && kv_b.fp8()) {
      quant = empty(DType::kF32, T, heads * lat);
      check_cuda(cuda::act_quant_dequant(xin, T, heads, lat, lat, quant.ptr<float>(), quant.ld, stream_),
                 "act_quant_dequant");
      xin = act(quant);
    }
    cuda::GemmBatch b;
    b.batch = heads;
    b.x_bs = lat;
    b.w_row_bs = nope + vdim;
    b.y_bs = vdim;
    cuda::DevWeight w = dev(kv_b.rows(nope, vdim));
    ++stats_.tiled;
    check_cuda(cuda::gemm_f32(xin, T, w, true, vdim, lat, act(out), b, stream_), "mla_absorb_out");
  }

  void attention_latent_impl(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                             const LatentPool& cache, const PagedKv& kv, const Tensor& row_seq, int64_t heads,
                             int64_t lat, int64_t rope, const Tensor& positions, float scale,
                             Tensor& out) override {
    select();
    cuda::DevPagedKv table;
    table.indptr = kv.indptr.ptr<int32_t>();
    table.pages = kv.pages.ptr<int32_t>();
    check_cuda(cuda::attention_latent(act(q_lat), act(q_rope), rope_head_stride, q_lat.rows, pool(cache),
                                      table, row_seq.ptr<int32_t>(), lat, rope, heads,
                                      positions.ptr<int32_t>(), scale, act(out), stream_),
               "attention_latent");
  }

  void mla_expand_kv_impl(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope, int64_t vdim,
                          Tensor& k, Tensor& v) override {
    select();
    const int64_t rope = k_rope.cols, s = kvb.rows;
    check_cuda(
        cuda::mla_expand_kv(act(kvb), act(k_rope), s, heads, nope, rope, vdim, act(k), act(v), stream_),
        "mla_expand_kv");
  }

  void cache_write_impl(const Tensor& rows, const LatentPool& cache, const Tensor& slots) override {
    select();
    check_cuda(cuda::cache_write(act(rows), rows.rows, pool(cache), slots.ptr<int32_t>(), stream_),
               "cache_write");
  }

  void cache_gather_impl(const LatentPool& cache, const Tensor& slots, Tensor& out) override {
    select();
    check_cuda(cuda::cache_gather(pool(cache), slots.ptr<int32_t>(), out.rows, act(out), stream_),
               "cache_gather");
  }

  void moe_route_impl(const Tensor& logits, const Tensor& bias, const RoutingParams& p, Tensor& ids,
                      Tensor& weights) override {
    select();
    Tensor b;
    if (!bias.empty()) {
      b = empty(DType::kF32, 1, p.experts);
      check_cuda(cuda::dequant_rows(dev(bias), nullptr, 1, 0, p.experts, act(b), stream_),
                 "moe_route (bias)");
    }
    check_cuda(cuda::moe_route(logits.ptr<float>(), logits.rows, p, b.empty() ? nullptr : b.ptr<float>(),
                               ids.ptr<int32_t>(), ids.ld, weights.ptr<float>(), weights.ld, stream_),
               "moe_route");
  }

  // The device tables of a layer's experts: per projection one DevWeight per expert (data null when
  // absent), and the presence flags.
  struct ExpertTables {
    Tensor buf;  // [3 * E DevWeight][E int32]
    int64_t experts = 0, max_n[3] = {0, 0, 0};
    DType wtype = DType::kF32;
    const cuda::DevWeight* proj(ExpertProj p) const {
      return reinterpret_cast<const cuda::DevWeight*>(buf.data) + static_cast<int>(p) * experts;
    }
    const int32_t* present() const {
      return reinterpret_cast<const int32_t*>(proj(ExpertProj::kGate) + 3 * experts);
    }
  };

  void prepare_experts(ExpertSet& set) override {
    select();
    auto t = std::make_shared<ExpertTables>();
    const int64_t E = set.size();
    t->experts = E;
    const size_t bytes = 3 * E * sizeof(cuda::DevWeight) + E * sizeof(int32_t);
    std::vector<uint8_t> host(bytes, 0);
    auto* dw = reinterpret_cast<cuda::DevWeight*>(host.data());
    auto* present = reinterpret_cast<int32_t*>(dw + 3 * E);
    for (int64_t e = 0; e < E; ++e) {
      const ExpertWeights* ew = set.experts[e];
      if (!ew) continue;
      present[e] = 1;
      const WeightMatrix* w[3] = {&ew->gate, &ew->up, &ew->down};
      for (int p = 0; p < 3; ++p) {
        dw[p * E + e] = dev(*w[p]);
        t->max_n[p] = std::max(t->max_n[p], w[p]->n());
      }
      t->wtype = ew->gate.w.dtype;
      if (ew->up.w.dtype != t->wtype || ew->down.w.dtype != t->wtype)
        fail_op("prepare_experts", "expert " + std::to_string(e) +
                                       "'s gate, up and down differ in type; the grouped GEMM takes one");
    }
    t->buf = empty(DType::kU8, 1, static_cast<int64_t>(bytes));
    check_cuda(cudaMemcpyAsync(t->buf.data, host.data(), bytes, cudaMemcpyHostToDevice, stream_),
               "prepare_experts");
    check_cuda(cudaStreamSynchronize(stream_), "prepare_experts");  // `host` goes out of scope
    ++counters_.uploads;
    ++counters_.syncs;
    set.device = t;
  }

  void moe_group_impl(const Tensor& ids, const ExpertSet& set, MoeGrouping& g) override {
    select();
    const ExpertTables& t = tables(set);
    const int64_t T = ids.rows, K = ids.cols, E = set.size();
    g.rows = T * K;  // a bound: the rows past offsets[E] are never read
    g.max_per_expert = T;
    g.offsets = empty(DType::kI32, E + 1, 1);
    g.slot_row = empty(DType::kI32, T, K);
    g.token = empty(DType::kI32, std::max<int64_t>(g.rows, 1), 1);
    g.token.rows = g.rows;
    if (T == 0) return;
    check_cuda(cuda::moe_group(ids.ptr<int32_t>(), ids.ld, T, K, t.present(), E, g.token.ptr<int32_t>(),
                               g.rows, g.offsets.ptr<int32_t>(), g.slot_row.ptr<int32_t>(), stream_),
               "moe_group");
  }

  void moe_expert_linear_impl(const Tensor& x, const MoeGrouping& g, const ExpertSet& set, ExpertProj proj,
                              Tensor& out, ActMode mode) override {
    select();
    const ExpertTables& t = tables(set);
    if (g.rows == 0) return;
    cuda::DevAct xin = act(x);
    Tensor quant;
    if (mode == ActMode::kFp8 && t.wtype == DType::kF8E4M3) {
      // The reference numerics: the activations' e4m3 round trip per 1x128 tile (an fp32 result, from fp32 or
      // bf16 activations), then an fp32 product.
      quant = empty(DType::kF32, x.rows, x.cols);
      check_cuda(
          cuda::act_quant_dequant(xin, x.rows, 1, x.cols, x.cols, quant.ptr<float>(), quant.ld, stream_),
          "act_quant_dequant");
      xin = act(quant);
    }
    ++stats_.tiled;
    check_cuda(cuda::grouped_gemm(xin, t.proj(proj), t.wtype, g.offsets.ptr<int32_t>(), t.experts,
                                  g.max_per_expert, t.max_n[static_cast<int>(proj)], act(out), stream_),
               "moe_expert_linear");
  }

  void moe_combine_impl(const Tensor& rows, const Tensor& slot_row, const Tensor& weights,
                        const Tensor& order, Tensor& out) override {
    select();
    const int64_t T = out.rows, K = slot_row.cols;
    check_cuda(cuda::moe_combine_ordered(rows.empty() ? cuda::DevAct{} : act(rows), slot_row.ptr<int32_t>(),
                                         slot_row.ld, weights.ptr<float>(), weights.ld, order.ptr<int32_t>(),
                                         order.ld, T, K, out.cols, act(out), stream_),
               "moe_combine");
  }

  // With the packed rows, on the device (only the ids come back); without, the logits rows come back in one
  // download and are sampled on the host by the CPU's sampler.
  void sample_impl(const Tensor& logits, const std::vector<SampleRow>& rows, const SampleTable* packed,
                   int32_t* ids) override {
    const int64_t V = logits.cols;
    if (packed) {
      Tensor scratch = empty(DType::kF32, logits.rows, V), out = empty(DType::kI32, logits.rows, 1);
      check_cuda(
          cuda::sample(logits.ptr<float>(), logits.ld, logits.rows, V, packed->params.ptr<int32_t>(),
                       packed->tokens.ptr<int32_t>(), scratch.ptr<float>(), out.ptr<int32_t>(), stream_),
          "sample");
      download(out, ids);
      return;
    }
    std::vector<float>& host = sample_buf_;
    host.resize(static_cast<size_t>(logits.rows * V));
    download(logits, host.data());
    for (int64_t i = 0; i < logits.rows; ++i) {
      const float* l = host.data() + i * V;
      const bool finite = first_non_finite(l, V) < 0;
      const SampleRow& r = rows[i];
      ids[i] = finite && r.rng ? sample_token(l, V, r.params, *r.rng, r.history) : -1;
    }
  }

  bool graphs_supported() const override { return true; }
  void begin_capture() override {
    select();
    check_cuda(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    pool_->set_capturing(true);
  }
  std::shared_ptr<void> end_capture() override {
    select();
    cudaGraph_t graph = nullptr;
    pool_->set_capturing(false);
    check_cuda(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check_cuda(e, "cudaGraphInstantiate");
    return std::shared_ptr<void>(static_cast<void*>(exec),
                                 [](void* x) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(x)); });
  }
  void abort_capture() override {
    select();
    pool_->set_capturing(false);
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
  }
  void replay(const std::shared_ptr<void>& graph) override {
    select();
    check_cuda(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.get()), stream_), "cudaGraphLaunch");
  }
  int64_t memory_generation() const override { return pool_->generation(); }

  Counters counters() const override { return counters_; }
  void reset_counters() override { counters_ = Counters{}; }
  void* native_stream() const override { return stream_; }
  std::shared_ptr<void> queue_point() override {
    select();
    cudaEvent_t e = nullptr;
    check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "queue_point");
    const cudaError_t r = cudaEventRecord(e, stream_);
    if (r != cudaSuccess) cudaEventDestroy(e);
    check_cuda(r, "queue_point");
    return std::shared_ptr<void>(e, [](void* p) { cudaEventDestroy(static_cast<cudaEvent_t>(p)); });
  }

 public:
  void synchronize() override {
    select();
    check_cuda(cudaStreamSynchronize(stream_), "synchronize");
    ++counters_.syncs;
  }
  CudaGemmStats stats() const { return stats_; }

 private:
  void select() { check_cuda(cudaSetDevice(device_), "cudaSetDevice"); }

  // dst = src converted to dst's type (F32 <-> BF16; same shape), on the stream.
  void convert(const Tensor& src, Tensor& dst) {
    check_cuda(cuda::dequant_rows(dev(src), nullptr, src.rows, 0, src.cols, act(dst), stream_), "convert");
  }

  // Packed host copy of a 4-byte tensor (F32 or I32).
  void download(const Tensor& src, void* dst) {
    select();
    if (src.rows <= 0 || src.cols <= 0) return;
    check_cuda(cudaMemcpy2DAsync(dst, src.cols * 4, src.data, src.ld * 4, src.cols * 4, src.rows,
                                 cudaMemcpyDeviceToHost, stream_),
               "copy_to_host");
    check_cuda(cudaStreamSynchronize(stream_), "copy_to_host");
    ++counters_.downloads;
    ++counters_.syncs;
    counters_.download_bytes += src.rows * src.cols * 4;
  }
  void upload(const void* src, Tensor& dst, size_t es) {
    select();
    if (dst.rows <= 0 || dst.cols <= 0) return;
    // Staged through pinned memory, so the copy is truly asynchronous and the host buffer is free at once.
    const size_t bytes = static_cast<size_t>(dst.rows * dst.cols) * es;
    uint8_t* staging = pinned(bytes);
    std::memcpy(staging, src, bytes);
    check_cuda(cudaMemcpy2DAsync(dst.data, dst.ld * es, staging, dst.cols * es, dst.cols * es, dst.rows,
                                 cudaMemcpyHostToDevice, stream_),
               "copy_from_host");
    check_cuda(cudaEventRecord(pending_event_, stream_), "copy_from_host (event)");
    ++counters_.uploads;
    counters_.upload_bytes += static_cast<int64_t>(bytes);
  }

  static cuda::DevPool pool(const LatentPool& c) {
    cuda::DevPool p;
    p.base = c.pool.data;
    p.bf16 = c.pool.dtype == DType::kBF16;
    p.page_rows = c.page_rows;
    p.page_stride = c.page_stride;
    p.width = c.width;
    return p;
  }

  const ExpertTables& tables(const ExpertSet& set) {
    const auto* t = static_cast<const ExpertTables*>(set.device.get());
    if (!t || t->experts != set.size())
      fail(ErrorCode::kInternal, "cuda backend: an expert set was not prepared (Backend::prepare_experts)");
    return *t;
  }

  // A pinned staging buffer for uploads, from a ring of pinned blocks: a block is reused only after the
  // stream passed the event recorded when it was last handed out (so a queued copy never sees new bytes).
  uint8_t* pinned(size_t bytes) {
    PinnedBlock& b = pinned_[pinned_next_];
    pinned_next_ = (pinned_next_ + 1) % pinned_.size();
    if (b.event && cudaEventQuery(b.event) == cudaErrorNotReady) {  // normally long done
      check_cuda(cudaEventSynchronize(b.event), "pinned staging");
      ++counters_.syncs;
    }
    (void)cudaGetLastError();
    if (b.bytes < bytes) {
      if (b.ptr) cudaFreeHost(b.ptr);
      b.ptr = nullptr;
      const size_t want = std::max<size_t>(bytes, 1 << 16);
      check_cuda(cudaMallocHost(reinterpret_cast<void**>(&b.ptr), want), "cudaMallocHost");
      b.bytes = want;
    }
    if (!b.event) check_cuda(cudaEventCreateWithFlags(&b.event, cudaEventDisableTiming), "cudaEventCreate");
    pending_event_ = b.event;
    return b.ptr;
  }

  // y = x @ W^T with x [m, k] (F32 or BF16; out F32 or BF16).
  void gemm(const Tensor& x, const cuda::DevWeight& w, Tensor& out, ActMode mode) {
    const int64_t m = x.rows;
    if (m <= 0) return;
    const cuda::DevAct xin = act(x);
    const bool fp8 = mode == ActMode::kFp8 && w.type == DType::kF8E4M3;
    if (fp8) {
      const bool try_lt = policy_ == GemmPolicy::kLt || (policy_ == GemmPolicy::kAuto && m > 16);
      if (try_lt && lt_->ok() && lt_shape_ok(m, w)) {
        const int64_t tiles = (w.k + 127) / 128;
        Tensor q = empty(DType::kU8, m, w.k), sc = empty(DType::kF32, tiles, m);
        check_cuda(cuda::act_quant(xin, m, w.k, q.ptr<uint8_t>(), w.k, sc.ptr<float>(), m, stream_),
                   "act_quant");
        // cuBLASLt writes fp32 (its D here); a BF16 out gets that result rounded once, after.
        Tensor y = out.dtype == DType::kF32 ? out : empty(DType::kF32, m, w.n);
        const char* err = nullptr;
        if (lt_->fp8_block_scaled(q.ptr<uint8_t>(), sc.ptr<float>(), m, w, y.ptr<float>(), y.ld, stream_,
                                  &err)) {
          if (out.dtype != DType::kF32) convert(y, out);
          ++stats_.lt_fp8;
          return;
        }
        if (err && !lt_warned_) {
          std::fprintf(stderr, "moert cuda backend: cublasLtMatmul failed (%s); using the own FP8 path\n",
                       err);
          lt_warned_ = true;
        }
        ++stats_.lt_fallbacks;
      }
      // The reference numerics: the quantised activations' round trip, then an fp32 product.
      Tensor xq = empty(DType::kF32, m, w.k);
      check_cuda(cuda::act_quant_dequant(xin, m, 1, w.k, w.k, xq.ptr<float>(), xq.ld, stream_),
                 "act_quant_dequant");
      f32_gemm(act(xq), m, w, out);
      return;
    }
    if (xin.bf16 && w.type == DType::kBF16 && lt_->ok() &&
        (policy_ == GemmPolicy::kLt || (policy_ == GemmPolicy::kAuto && m > 16))) {
      // bf16 x bf16 on the tensor cores, fp32 accumulation; out in its own type.
      const char* err = nullptr;
      if (lt_->bf16(x.data, x.ld, m, w, out.data, out.ld, out.dtype == DType::kBF16, stream_, &err)) {
        ++stats_.lt_bf16;
        return;
      }
      if (err && !lt_warned_) {
        std::fprintf(stderr, "moert cuda backend: cublasLtMatmul (bf16) failed (%s); using the own kernels\n",
                     err);
        lt_warned_ = true;
      }
      ++stats_.lt_fallbacks;
    }
    f32_gemm(xin, m, w, out);
  }

  // cuBLASLt's VEC128 / BLK128x128 FP8 GEMM takes M and N multiples of 4, weight views starting on a scale
  // block, and a scale row stride of round_up(ceil(K / 128), 4): decided before anything is quantised.
  static bool lt_shape_ok(int64_t m, const cuda::DevWeight& w) {
    const int64_t kb = (w.k + 127) / 128;
    return m % 4 == 0 && w.n % 4 == 0 && w.row0 % 128 == 0 && w.scale_ld == (kb + 3) / 4 * 4;
  }

  // fp32-accumulating products (x and out each F32 or BF16).
  void f32_gemm(const cuda::DevAct& x, int64_t m, const cuda::DevWeight& w, Tensor& out) {
    if (m <= 16) {
      const cudaError_t e = cuda::gemm_small_m(x, m, w, act(out), stream_);
      if (e == cudaSuccess) {
        ++stats_.small_m;
        return;
      }
      if (e != cudaErrorNotSupported) check_cuda(e, "gemm_small_m");
    }
    ++stats_.tiled;
    check_cuda(cuda::gemm_f32(x, m, w, true, w.n, w.k, act(out), cuda::GemmBatch{}, stream_), "gemm_f32");
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<DevicePool> pool_;
  std::unique_ptr<cuda::LtGemm> lt_;
  GemmPolicy policy_ = GemmPolicy::kAuto;
  struct PinnedBlock {
    uint8_t* ptr = nullptr;
    size_t bytes = 0;
    cudaEvent_t event = nullptr;
  };
  std::vector<PinnedBlock> pinned_ = std::vector<PinnedBlock>(8);
  size_t pinned_next_ = 0;
  cudaEvent_t pending_event_ = nullptr;
  std::vector<float> sample_buf_;
  Counters counters_;
  CudaGemmStats stats_;
  bool lt_warned_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  return std::make_unique<CudaBackend>(device_index);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

void cuda_synchronize(Backend& backend) {
  backend.synchronize();  // the virtual: CUDA's waits for its stream, others' return at once
}

CudaGemmStats cuda_gemm_stats(const Backend& backend) {
  if (auto* b = dynamic_cast<const CudaBackend*>(&backend)) return b->stats();
  return {};
}

}  // namespace moert
