// The DeepSeek-V2/V3 graph, written once over the Backend op interface: embeddings, MLA (expanded for
// prefill, absorbed into the latent for decode), dense MLP or MoE (router, routed and shared experts),
// final norm and lm_head; plus the MTP module that drafts the next-next token.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "kv/latent_cache.h"
#include "model/model_weights.h"
#include "model/step_batch.h"
#include "weights/weight_store.h"

namespace moert {

// Expert parallelism (runtime/ep/expert_parallel.h implements it): when a model has one, the routed
// experts of every MoE layer run through it (dispatch to the ranks holding them, compute, combine) instead
// of Backend::moe_experts over all experts; routing and the shared experts stay local. A forward is then
// collective: every rank of the group calls forward (or mtp_draft) in step, a rank with no tokens too.
//
// The exchange is split in three so the two-microbatch overlap can interleave two of them: begin() routes
// the tokens and starts the dispatch, compute() waits for the tokens that arrived, runs the local experts
// and starts the combine, finish() waits for the combine and writes the result. A hook that overlaps runs
// the exchanges on its own thread, in the order begin()/compute() were called (the same on every rank).
class MoeExchange {
 public:
  virtual ~MoeExchange() = default;  // waits for an exchange still in flight
};

class MoeExpertsHook {
 public:
  virtual ~MoeExpertsHook() = default;
  // For the local router's ids and weights ([T, top_k]) of x [T, hidden]. `layer` is the layer slot (MTP
  // layers follow the main ones). T may be 0 (a rank with no tokens still takes part in the exchange);
  // then the tensors are empty. The returned exchange keeps copies, not the tensors.
  virtual std::unique_ptr<MoeExchange> begin(int64_t layer, const LayerWeights& L, const Tensor& x,
                                             const Tensor& ids, const Tensor& weights, ActMode mode) = 0;
  virtual void compute(MoeExchange& ex) = 0;
  // out [T, hidden] = sum over each token's top-k of weight * expert(x) (untouched when T = 0).
  virtual void finish(MoeExchange& ex, Tensor& out) = 0;
  // True when forward should split each batch into two microbatches whose exchanges overlap the other's
  // compute. Every rank of a group must answer the same (it fixes the number of exchanges per layer).
  virtual bool two_microbatches() const { return false; }
  // This rank's forward failed with exchanges possibly in flight: fail the group so they end now (their
  // peers will not finish them) instead of at the time-out.
  virtual void abandon(const std::string& why) { (void)why; }

  // The three in a row.
  void routed_experts(int64_t layer, const LayerWeights& L, const Tensor& x, const Tensor& ids,
                      const Tensor& weights, Tensor& out, ActMode mode) {
    std::unique_ptr<MoeExchange> ex = begin(layer, L, x, ids, weights, mode);
    compute(*ex);
    finish(*ex, out);
  }
};

struct ModelOptions {
  ActMode act_mode = ActMode::kF32;
  AttentionForm attention = AttentionForm::kAuto;
  bool load_mtp = true;
  // Decode steps (every sequence one token) captured as backend graphs, one per batch-size bucket (powers
  // of two up to max_graph_batch), replayed with the step's tables updated in place. Only where the backend
  // supports graphs (CUDA) and without expert parallelism.
  bool graphs = true;
  int64_t max_graph_batch = 128;
  // Expert parallelism (both unset by default: every expert bound, computed locally).
  std::shared_ptr<MoeExpertsHook> moe_hook;
  ExpertFilter bind_expert;  // which routed experts this process binds (see bind_model_weights)
};

class DeepseekNetwork {
 public:
  DeepseekNetwork(ModelConfig cfg, std::shared_ptr<WeightStore> store, Backend& backend, ModelOptions opts);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  Backend& backend() const { return backend_; }
  const ModelOptions& options() const { return opts_; }
  // (Captured decode graphs recorded the old choice: they are dropped.)
  void set_act_mode(ActMode m) {
    opts_.act_mode = m;
    graphs_.clear();
  }
  void set_attention_form(AttentionForm f) {
    opts_.attention = f;
    graphs_.clear();
  }
  // Decode graphs on or off (off: every step eager, e.g. while an OpProfiler times each op).
  void set_graphs(bool on) {
    opts_.graphs = on;
    graphs_.clear();
  }
  // Cache slots a LatentCache for this model needs (main layers, plus MTP layers when loaded).
  int64_t cache_layers() const;

  // The step batch of `steps` for this model (its attention form; the two halves when the expert hook
  // overlaps). Validates the steps and reserves their pages (see StepBatch).
  // A decode-only batch that fits a graph bucket gets that bucket's fixed layout (see FixedLayout).
  // `sampling`: the rows the step will sample, packed into the batch's upload for a device sampler.
  StepBatch make_batch(std::vector<SequenceStep> steps, const std::vector<SampleRow>* sampling = nullptr);

  // Runs the batch: every layer's ops over all its rows at once. Returns the logits rows the steps asked for
  // ([batch.logits_count(), vocab], in the steps' order) in the backend's memory (empty when none), and
  // advances each sequence's cache. `on_hidden(layer, h)`, when set, sees the hidden state entering each
  // layer and (layer = num_hidden_layers) after the final norm; if `final_hidden` is given it receives the
  // last layer's output before the final norm [T, hidden]. Both in the batch's row order (the steps' order
  // when every step has the same attention form, e.g. a single step).
  Tensor forward(StepBatch& batch, const std::function<void(int64_t, const Tensor&)>& on_hidden = nullptr,
                 std::vector<float>* final_hidden = nullptr);
  // The same from steps, the logits copied to `logits` (sum(all_logits ? n : no_logits ? 0 : 1) * vocab
  // floats; may be null). Throws Error on a bad token id or a full cache, before any cache is modified.
  void forward(std::vector<SequenceStep>& steps, float* logits,
               const std::function<void(int64_t, const Tensor&)>& on_hidden = nullptr,
               std::vector<float>* final_hidden = nullptr);

  // MTP draft logits: for each position i, from the main model's hidden state h_i (AFTER the final norm,
  // the tensor the lm_head multiplies, as vLLM and SGLang feed it: forward's on_hidden at layer
  // num_hidden_layers; tested against a torch reference to 1e-5,
  // [n, hidden]) and the token t_{i+1} that follows, the logits for t_{i+2} ([n, vocab]). Uses and advances
  // the MTP layer's slot of `kv` (which tracks its own length). Requires num_nextn_predict_layers > 0.
  // The MTP layer attends over its own cache slot at positions 0 .. pos0 + i, which earlier calls filled;
  // positions pos0 .. pos0 + n - 1 must already be in the main cache.
  void mtp_draft(KvSequence& kv, int64_t pos0, const float* hidden, const int32_t* next_tokens, int64_t n,
                 float* logits);
  // The same batched, in the backend's memory: step i covers positions pos0[i] .. pos0[i] + n - 1 of its
  // sequence (steps[i].tokens: the token after each), fed rows hidden_row[i] .. + n - 1 of `hidden` (the
  // main forward's rows after the final norm, as forward's on_hidden sees them); all_logits / no_logits as
  // in a forward (the default: the last row's, the draft). Writes the MTP slot at those positions (which
  // may run past the main cache's length: chained drafts) and leaves each sequence's length as it was.
  // Returns the logits rows in the steps' order (empty when none); `mtp_hidden`, when given, receives the
  // MTP layer's output after its norm for every row in the batch's row order ([T, hidden], with `batch_rows`
  // each step's first row in it), what a chained draft feeds on.
  Tensor mtp_forward(std::vector<SequenceStep> steps, const std::vector<int64_t>& pos0,
                     const std::vector<int64_t>& hidden_row, const Tensor& hidden,
                     Tensor* mtp_hidden = nullptr, std::vector<int64_t>* batch_rows = nullptr);
  bool has_mtp() const { return !w_.mtp.empty(); }

  // Expert parallelism: re-binds the routed experts after a change of placement (between steps), keeping
  // those `keep` accepts; sets options().bind_expert to it.
  void rebind_experts(const ExpertFilter& keep);

 private:
  struct Microbatch;  // two_microbatch.cpp

  // The forward's ops over a batch (no advance): the logits rows, in the backend's memory.
  Tensor compute(StepBatch& batch, const std::function<void(int64_t, const Tensor&)>& on_hidden,
                 std::vector<float>* final_hidden);
  // One graph bucket: its fixed layout, the captured graph and its output. A bucket's first batch runs
  // eagerly (so every buffer the forward needs is in the allocator's cache), its second is captured.
  // The buffers a graph uses inside go back to the backend's allocator after the capture and its replays
  // write them again: safe while every buffer allocated later is either released before the next replay
  // or (the fixed tables, re-uploaded before each replay) rewritten before it is read; anything long-lived
  // must be allocated before the first capture (weights, caches) or drop the graphs.
  struct GraphSlot {
    FixedLayout layout;
    const LatentCache* cache = nullptr;
    std::shared_ptr<void> graph;
    Tensor logits;
    int64_t generation = -1;
    int eager_runs = 0, failures = 0;
  };
  GraphSlot* graph_slot(const std::vector<SequenceStep>& steps, int64_t sampling_words);

  void attention(const LayerWeights& L, int64_t layer_slot, Tensor& x_norm, Tensor& out,
                 const BatchPart& part);
  // out = down(silu(gate(x)) * up(x)): a dense MLP or the shared experts.
  void ffn(const ExpertWeights& w, const Tensor& x, Tensor& out);
  // The router: ids [T, top_k] and weights [T, top_k] for x_norm [T, hidden].
  void route(const LayerWeights& L, const Tensor& x_norm, Tensor& ids, Tensor& weights);
  void mlp(const LayerWeights& L, int64_t slot, Tensor& x_norm, Tensor& out);
  // x += attention(norm(x)); x_norm = post-attention norm of x. y [T, hidden] is scratch (the caller's
  // MLP output buffer, free until then).
  void attention_block(const LayerWeights& L, int64_t slot, Tensor& x, Tensor& x_norm, Tensor& y,
                       const BatchPart& part);
  void decoder_layer(const LayerWeights& L, int64_t slot, Tensor& x, const BatchPart& part);
  // The main layers over x [T, hidden] (with on_hidden as forward's).
  void run_layers(Tensor& x, const BatchPart& part,
                  const std::function<void(int64_t, const Tensor&)>& on_hidden);
  // The same as the batch's two halves, whose expert exchanges overlap the other's compute; every rank
  // makes the same exchanges, so the batch may be empty.
  void run_layers_two_microbatches(Tensor& x, const StepBatch& batch);
  // The routed experts' grouped-op view of every MoE layer (after binding or re-binding).
  void prepare_expert_sets();

  ModelConfig cfg_;
  std::shared_ptr<WeightStore> store_;
  Backend& backend_;
  ModelOptions opts_;
  ModelWeights w_;
  Tensor inv_freq_;                      // F32 [1, rope / 2] in the backend's memory
  std::map<int64_t, GraphSlot> graphs_;  // by bucket (rows)
  const LatentCache* cache_ = nullptr;   // the current batch's
  float rope_factor_ = 1.0f, softmax_scale_ = 1.0f;
  RoutingParams router_;
};

}  // namespace moert
