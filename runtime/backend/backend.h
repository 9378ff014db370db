// The op interface the model graph is written against: one declaration per op, its argument checks once
// (backend.cpp), one compute per backend (cpu_backend.cpp, cuda_backend.cpp). Activations are tensors of the
// backend's activation dtype (act_dtype(): F32, or BF16 on a GPU that allows it) on its device, with fp32
// math inside every op; weights are WeightMatrix views in their stored type. Index tensors (ids, positions,
// slots, page tables) live in the backend's memory too: the step's tables arrive in one upload (see
// runtime/model/step_batch.h) and no op reads device memory on the host, so a forward on a GPU never waits
// for it until the sampled ids come back.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "backend/tensor.h"
#include "common/routing_params.h"

namespace moert {

class OpCheck;  // backend/op_checks.h

struct TensorInfo;

// Activation numerics of the FP8 GEMMs.
enum class ActMode : uint8_t {
  kF32,  // the reference: activations stay fp32
  kFp8,  // DeepSeek's: activations quantised per 1x128 tile (scale = amax / 448) before each FP8 GEMM
};

// A layer's slice of the paged latent cache: page p of this layer starts at pool + p * page_stride elements
// (F32, or BF16 on a GPU),
// token r of a page at r * width within it (width = kv_lora_rank + qk_rope_head_dim). A cache slot names a
// token's row: slot = page * page_rows + r.
struct LatentPool {
  Tensor pool;  // F32, or BF16 on a GPU
  int64_t page_rows = 0, page_stride = 0, width = 0;
};

// The paged-KV table of a batch's sequences, as FlashInfer's paged_kv_t (I32 tensors [n, 1] in the backend's
// memory): sequence s owns pages[indptr[s] .. indptr[s + 1]), the last of them holding last_page_len[s]
// tokens, kv_len[s] tokens in all (after this step's tokens are written). max_kv_len is known to the host.
struct PagedKv {
  Tensor indptr, pages, last_page_len, kv_len;
  int64_t seqs = 0, max_kv_len = 0;
};

struct ExpertWeights {
  WeightMatrix gate, up, down;
};

enum class ExpertProj : uint8_t { kGate, kUp, kDown };

// A layer's routed experts as the grouped MoE ops see them: experts[e] null when this process does not hold
// expert e (expert parallelism). `device` is what Backend::prepare_experts made of them (the weight tables
// on the GPU); rebuild it whenever `experts` changes.
struct ExpertSet {
  std::vector<const ExpertWeights*> experts;
  std::shared_ptr<void> device;
  int64_t size() const { return static_cast<int64_t>(experts.size()); }
};

// A batch's (token, slot) pairs grouped by expert (a counting sort of the router's ids, stable in token
// order): grouped row r holds token token[r]; expert e's rows are offsets[e] .. offsets[e + 1]; slot_row
// [T, top_k] is the grouped row of each pair, -1 for a pair whose expert is not held here. I32 tensors in the
// backend's memory. `rows` is the grouped buffers' row count: exact on the CPU, the bound T * top_k on a GPU
// (whose rows past offsets[E] are never read). A token names each expert at most once (as the router and
// expert parallelism's packings guarantee): a GPU sizes its grouped GEMM by that.
struct MoeGrouping {
  Tensor token, offsets, slot_row;
  int64_t rows = 0;
  int64_t max_per_expert = 0;  // a bound on any expert's rows (the token count)
};

// What the sampler needs of one logits row (host objects; the RNG advances).
struct SampleRow {
  SamplingParams params;
  SamplingRng* rng = nullptr;
  const TokenHistory* history = nullptr;
};

// The sampling rows packed for a device sampler, uploaded with the step's tables (runtime/model/step_batch):
// params I32 [rows * kSampleParamWords] (per row: temperature, top_k, top_p, min_p, repetition_penalty,
// presence_penalty as f32 bits, the row's uniform draw u as f32 bits (drawn from its RNG when packed),
// then the offset and count of its penalty tokens, then frequency_penalty as f32 bits), tokens I32 [2 * n]
// (token id, flags: 1 seen in the prompt, 2 in the output, and from bit 2 up the times it is in the output).
constexpr int64_t kSampleParamWords = 10;
struct SampleTable {
  Tensor params, tokens;
  int64_t rows = 0;
};

// Per-op wall times, for benchmarks (bench/v3_width_bench.cpp): with a profiler set on a backend, each op
// waits for the work queued before it (Backend::synchronize), runs, waits for itself and reports. That costs
// a device round trip per op, so the times add up to more than an unprofiled step; never set one while a
// graph is being captured.
class OpProfiler {
 public:
  virtual ~OpProfiler() = default;
  // op: the op's name; rows: its activation rows (tokens, or grouped expert rows); n, k: the output and input
  // columns of a GEMM-like op (linear, the MLA absorptions, moe_expert_linear), else 0.
  virtual void record(const char* op, int64_t rows, int64_t n, int64_t k, double seconds) = 0;
};

// The ops are non-virtual: each checks its arguments once (backend.cpp: shapes, dtypes, devices, aliasing,
// index tensors' layout, with the helpers of op_checks.h) and then calls the backend's protected *_impl,
// which only computes (the NVI pattern, as CTranslate2's ops check then dispatch). A failed check throws
// Error(kInternal) naming the op and the argument: the model is expected to pass consistent arguments.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual DeviceKind device() const = 0;

  // The element type the model stores its activations in between ops (docs/DESIGN.md, "Numerics"): F32 (the
  // default and the CPU's, always) or BF16 where supports_bf16_activations() (CUDA). Every op's math and
  // accumulation stay fp32; an op whose operands the checks allow in either type reads and writes each in its
  // own (e.g. a bf16 GEMM input with an fp32 output). Set once, before the model is built.
  DType act_dtype() const { return act_dtype_; }
  // Throws Error(kUnsupported) for BF16 on a backend without bf16 kernels, Error(kInvalidArgument) for any
  // type but F32 and BF16.
  void set_act_dtype(DType dtype);
  virtual bool supports_bf16_activations() const { return false; }

  // Memory. New tensors are uninitialised, row-major with ld = cols.
  Tensor empty(DType dtype, int64_t rows, int64_t cols);
  void fill_zero(Tensor& t);
  // A checkpoint tensor ([rows, cols]) on this device: a view of the mapping on CPU, a copy elsewhere.
  Tensor weight(const TensorInfo& info, int64_t rows, int64_t cols);
  // src F32 (or BF16 where the backend allows bf16 activations: widened on the device) -> dst fp32 packed.
  void copy_to_host(const Tensor& src, float* dst);
  void copy_to_host_i32(const Tensor& src, int32_t* dst);  // I32 [rows, cols] packed
  // fp32 [rows, cols] packed -> dst F32 (or BF16 as copy_to_host: rounded to nearest even on the device).
  void copy_from_host(const float* src, Tensor& dst);
  void copy_from_host_i32(const int32_t* src, Tensor& dst);

  // Activation operands (x, out, q, k, v, rows, ...) are F32 or BF16 (see act_dtype()), each in its own type
  // unless the op says they share one; index tensors I32; what stays F32 is said.
  // out[i] = table[ids[i]] (in out's type). ids: I32 [n, 1].
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out);
  // out = w * x / sqrt(mean(x^2) + eps), per row. x and out may alias (then they share a type).
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out);
  // out = x @ W^T.
  void linear(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode);
  // RoPE on interleaved pairs of `heads` vectors of `dim` values at column stride `head_stride`, in place.
  // inv_freq: F32 [1, dim / 2] in the backend's memory.
  void rope(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
            const Tensor& inv_freq, float attention_factor);
  // out = silu(gate) * up (out may alias gate or up; the three share a type).
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out);
  // y += x.
  void add(const Tensor& x, Tensor& y);
  // out[i] = x[rows[i]]. rows: I32 [n, 1].
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor& out);

  // Expanded causal attention over a batch's sequences at once (varlen, as FlashAttention's cu_seqlens):
  // query row i attends key rows k_start[i] .. k_start[i] + positions[i] of k and v (its sequence's keys,
  // key j at position j). Consecutive rows of one sequence share k_start. positions, k_start: I32 [t, 1].
  // q, k, v and out share a type.
  void attention_expanded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                          const Tensor& positions, const Tensor& k_start, float scale, Tensor& out);
  // MLA absorbed into the latent: q_lat[:, h] = q_nope[:, h] @ W_UK[h] (W_UK[h] = kv_b rows of head h's
  // nope part), out[:, h] = o_lat[:, h] @ W_UV[h]^T.
  void mla_absorb_q(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b, int64_t heads,
                    int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode);
  void mla_absorb_out(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                      int64_t vdim, Tensor& out, ActMode mode);
  // Attention over the latent cache for a batch's sequences at once: query row i belongs to sequence
  // row_seq[i] of `kv` and attends its cache rows 0 .. positions[i]. q_lat [t, heads * lat]; q_rope: head
  // h's rope query at columns h * rope_head_stride .. + rope; out [t, heads * lat]. row_seq: I32 [t, 1].
  // q_lat, q_rope and out share a type.
  void attention_latent(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                        const LatentPool& cache, const PagedKv& kv, const Tensor& row_seq, int64_t heads,
                        int64_t lat, int64_t rope, const Tensor& positions, float scale, Tensor& out);
  // Expanded keys and values from kv_b's output [s, heads * (nope + vdim)] and the rope keys [s, rope]:
  // k [s, heads * (nope + rope)] = per head [k_nope | k_rope], v [s, heads * vdim]. All four share a type.
  void mla_expand_kv(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope, int64_t vdim,
                     Tensor& k, Tensor& v);
  // Writes rows [t, width] to the cache slots slots[0 .. t) (I32 [t, 1]): every new token of a step, one
  // call.
  void cache_write(const Tensor& rows, const LatentPool& cache, const Tensor& slots);
  // out[i] = the cache row at slots[i] ([n, width]).
  void cache_gather(const LatentPool& cache, const Tensor& slots, Tensor& out);

  // Router: logits F32 [t, experts] -> ids I32 [t, top_k], weights F32 [t, top_k]. bias may be empty.
  void moe_route(const Tensor& logits, const Tensor& bias, const RoutingParams& p, Tensor& ids,
                 Tensor& weights);
  // The grouped MoE primitives; the expert FFN is written once over them (runtime/model). moe_group: ids
  // [T, top_k] -> g (experts not held in `set` get no rows). moe_expert_linear: for each expert e with rows,
  // out[offsets[e] .. offsets[e+1]) = x[same rows] @ W_e^T, W_e = set.experts[e]'s `proj` (rows [g.rows, *]).
  // moe_combine: out[t] = sum over t's slots s with slot_row[t, s] >= 0, in ascending (order[t, s], s), of
  // weights[t, s] * rows[slot_row[t, s]], from zero (the router's ids as `order`: ascending expert id).
  virtual void prepare_experts(ExpertSet& set) { set.device.reset(); }
  void moe_group(const Tensor& ids, const ExpertSet& set, MoeGrouping& g);
  void moe_expert_linear(const Tensor& x, const MoeGrouping& g, const ExpertSet& set, ExpertProj proj,
                         Tensor& out, ActMode mode);
  void moe_combine(const Tensor& rows, const Tensor& slot_row, const Tensor& weights, const Tensor& order,
                   Tensor& out);

  // Samples one token per logits row (F32 [R, vocab], rows.size() == R; every row with its RNG) into ids[0 ..
  // R) (host memory): greedy, temperature, top-k, top-p, min-p, repetition and presence penalties, each row
  // with its own seeded RNG. A row whose logits hold a NaN or an infinity gets id -1. The only transfer to
  // the host of a step. With `packed` (the rows as the step batch uploaded them) a device samples on the
  // device and returns the ids only; the CPU samples from `rows` (its seeded results do not depend on
  // packing).
  void sample(const Tensor& logits, const std::vector<SampleRow>& rows, const SampleTable* packed,
              int32_t* ids);

  // Graph capture (CUDA graphs): the ops issued between begin_capture and end_capture are recorded, not
  // run; replay runs them again over whatever their tensors then hold. The CPU has none (false).
  // memory_generation changes whenever memory a captured graph may point into was released: graphs made
  // before must then be captured anew.
  virtual bool graphs_supported() const { return false; }
  virtual void begin_capture() {}
  virtual std::shared_ptr<void> end_capture() { return nullptr; }
  virtual void abort_capture() {}
  virtual void replay(const std::shared_ptr<void>& graph) { (void)graph; }
  virtual int64_t memory_generation() const { return 0; }

  // Counters of host synchronisations and host<->device transfers since the last reset (a debugging aid
  // and what the tests use to prove a forward never waits on the host). Zero on the CPU.
  struct Counters {
    int64_t syncs = 0, uploads = 0, downloads = 0;
    int64_t upload_bytes = 0, download_bytes = 0;
  };
  virtual Counters counters() const { return {}; }
  virtual void reset_counters() {}

  // Which kernel paths this backend's forward takes, by name (moert_model_info_int's "cpu_*" keys); false
  // for a name it does not answer. May run a one-time hardware check (the CPU's AMX self-checks). Here, for
  // a backend whose forward runs none of the CPU kernels: cpu_isa -1, the CPU's matrix paths 0.
  virtual bool path_info(const std::string& key, int64_t* out) const {
    if (key == "cpu_isa")
      *out = -1;
    else if (key == "cpu_amx_bf16" || key == "cpu_amx_int8" || key == "cpu_q4_int8")
      *out = 0;
    else
      return false;
    return true;
  }

  // The device queue the ops run on (a cudaStream_t on CUDA; nullptr on the CPU), for a transport that
  // must order its exchange after them (runtime/ep: NCCL).
  virtual void* native_stream() const { return nullptr; }
  // Waits until the work queued so far is done (CUDA: its stream; the CPU's ops are done when they return).
  virtual void synchronize() {}
  // The op profiler (not owned; null: none, the default). Not thread-safe against ops running.
  void set_op_profiler(OpProfiler* p) { profiler_ = p; }
  // A point in the device queue: the ops queued so far (a recorded cudaEvent_t on CUDA, freed with the
  // pointer; null on the CPU, whose ops are done when they return). Lets another thread order work after
  // exactly these ops, not after whatever this thread queues meanwhile (the overlapped EP exchange).
  virtual std::shared_ptr<void> queue_point() { return nullptr; }

 protected:
  // The argument checks of op `op` on this backend (its device; BF16 activations where it has their kernels).
  OpCheck check(const char* op) const;

  // The backends' compute, called with checked arguments only (see the public ops above for their meaning).
  virtual Tensor empty_impl(DType dtype, int64_t rows, int64_t cols) = 0;
  virtual void fill_zero_impl(Tensor& t) = 0;
  virtual Tensor weight_impl(const TensorInfo& info, int64_t rows, int64_t cols) = 0;
  // 4-byte elements (F32 or I32; BF16 tensors where supports_bf16_activations(), converted to or from fp32
  // host values).
  virtual void copy_to_host_impl(const Tensor& src, void* dst) = 0;
  virtual void copy_from_host_impl(const void* src, Tensor& dst) = 0;
  virtual void embedding_impl(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  virtual void rmsnorm_impl(const Tensor& x, const Tensor& w, float eps, Tensor& out) = 0;
  virtual void linear_impl(const Tensor& x, const WeightMatrix& w, Tensor& out, ActMode mode) = 0;
  virtual void rope_impl(Tensor& x, int64_t heads, int64_t head_stride, int64_t dim, const Tensor& positions,
                         const Tensor& inv_freq, float attention_factor) = 0;
  virtual void silu_mul_impl(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  virtual void add_impl(const Tensor& x, Tensor& y) = 0;
  virtual void gather_rows_impl(const Tensor& x, const Tensor& rows, Tensor& out) = 0;
  virtual void attention_expanded_impl(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                                       const Tensor& positions, const Tensor& k_start, float scale,
                                       Tensor& out) = 0;
  virtual void mla_absorb_q_impl(const Tensor& q_nope, int64_t head_stride, const WeightMatrix& kv_b,
                                 int64_t heads, int64_t nope, int64_t vdim, Tensor& q_lat, ActMode mode) = 0;
  virtual void mla_absorb_out_impl(const Tensor& o_lat, const WeightMatrix& kv_b, int64_t heads, int64_t nope,
                                   int64_t vdim, Tensor& out, ActMode mode) = 0;
  virtual void attention_latent_impl(const Tensor& q_lat, const Tensor& q_rope, int64_t rope_head_stride,
                                     const LatentPool& cache, const PagedKv& kv, const Tensor& row_seq,
                                     int64_t heads, int64_t lat, int64_t rope, const Tensor& positions,
                                     float scale, Tensor& out) = 0;
  virtual void mla_expand_kv_impl(const Tensor& kvb, const Tensor& k_rope, int64_t heads, int64_t nope,
                                  int64_t vdim, Tensor& k, Tensor& v) = 0;
  virtual void cache_write_impl(const Tensor& rows, const LatentPool& cache, const Tensor& slots) = 0;
  virtual void cache_gather_impl(const LatentPool& cache, const Tensor& slots, Tensor& out) = 0;
  virtual void moe_route_impl(const Tensor& logits, const Tensor& bias, const RoutingParams& p, Tensor& ids,
                              Tensor& weights) = 0;
  virtual void moe_group_impl(const Tensor& ids, const ExpertSet& set, MoeGrouping& g) = 0;
  virtual void moe_expert_linear_impl(const Tensor& x, const MoeGrouping& g, const ExpertSet& set,
                                      ExpertProj proj, Tensor& out, ActMode mode) = 0;
  virtual void moe_combine_impl(const Tensor& rows, const Tensor& slot_row, const Tensor& weights,
                                const Tensor& order, Tensor& out) = 0;
  virtual void sample_impl(const Tensor& logits, const std::vector<SampleRow>& rows,
                           const SampleTable* packed, int32_t* ids) = 0;

 private:
  // Runs `compute` (an op's *_impl call), timed when a profiler is set.
  template <class F>
  void timed(const char* op, int64_t rows, int64_t n, int64_t k, F&& compute);

  DType act_dtype_ = DType::kF32;
  OpProfiler* profiler_ = nullptr;
};

// batch_invariant: every row's result of every op is the same bits whatever else is in the batch (the GEMMs
// take their packed-panel path at every row count; slower for decode-sized calls). Then a sequence's logits
// do not depend on the requests batched with it, on the chunking of its prompt, on expert parallelism (exact
// combine) or on the two-microbatch split.
std::unique_ptr<Backend> make_cpu_backend(int threads, bool batch_invariant = false);

// The CUDA backend on GPU `device_index` (backend/cuda/cuda_backend.h has the rest of its surface): defined
// by the CUDA backend when linked in, else by the client of the CUDA provider library (runtime/provider),
// which throws Error(kUnsupported) when the library is not installed. Throws Error(kDevice) when the device
// cannot be used.
std::unique_ptr<Backend> make_cuda_backend(int device_index);

}  // namespace moert
