// The generation engine: a request queue and one scheduler thread per model that batches every running
// request into each forward step (continuous batching: requests join and leave between steps), splits
// long prompts into chunks so they do not stall running streams (chunked prefill), samples, and delivers
// tokens to pull-based streams. KV pages come from the model's shared budget: a request that cannot fit
// fails alone with a clear error and the others continue.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/generation_params.h"
#include "engine/model_instance.h"
#include "engine/request_stream.h"
#include "engine/text_stream.h"

namespace moert {

struct RequestState;
class StepPolicy;

// A request is two objects: the consumer's RequestStream (engine/request_stream.h), returned by submit, and
// the scheduler's RequestState (engine/request_state.h), which only the scheduler thread touches.
class Engine {
 public:
  // extra_eos: ids that end a sequence besides config.json's (generation_config.json's eos_token_id).
  Engine(std::shared_ptr<ModelInstance> model, TextDecoderFactory decoders,
         std::vector<int64_t> extra_eos = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; the returned handle streams its tokens. Throws Error(kInvalidArgument) for an empty
  // prompt, a bad token id or a prompt longer than the context.
  std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt, GenerationParams params);
  // Continues a sequence computed elsewhere (a KV image: prefill/decode separation): `kv` holds every
  // token of `tokens`, `last_logits` are the logits after the last one; the first token is sampled from
  // them, as the request that computed them would have. The request's prompt is `tokens`.
  std::shared_ptr<RequestStream> submit_resumed(std::vector<int32_t> tokens, KvSequence kv,
                                                std::vector<float> last_logits, GenerationParams params);

  // Logits for `n` tokens appended to `kv` (all n rows, or the last only), computed by the scheduler in its
  // next step, batched with the running requests (the same step batch and forward). Blocks until done; the
  // caller keeps kv, tokens and logits alive and uses kv from no other thread meanwhile. Throws what the
  // forward threw (kInvalidArgument for a bad token id or a context overflow, kOutOfMemory for a full cache;
  // kv is then unchanged). Without expert parallelism only (its steps are the group's collectives).
  void eval(KvSequence& kv, const int32_t* tokens, int64_t n, bool all_logits, float* logits);

  // Speculative decoding with the checkpoint's MTP module (load options speculative, draft_tokens): on
  // when the module is loaded and speculative is "on" (or "auto" on device cuda), without expert
  // parallelism.
  bool speculative() const { return draft_tokens_ > 0; }

  int64_t prefill_chunk() const { return prefill_chunk_; }
  void set_prefill_chunk(int64_t n) { prefill_chunk_ = n; }

 private:
  using Running = std::vector<std::unique_ptr<RequestState>>;
  // A checked request of `prompt`, not yet queued (no lock taken).
  std::unique_ptr<RequestState> make_request(std::vector<int32_t> prompt, GenerationParams params);
  // The scheduler: one loop, alone or with an expert-parallel group as its StepPolicy says.
  void loop();
  struct EvalJob;
  void step(Running& running, std::vector<EvalJob*> evals, bool collective);
  // Continuous batching: waiting requests join `running` between steps, up to max_batch (mu_ held).
  void admit_queued(Running& running);
  // The running requests end with `why` (those not finished yet).
  void end_running(Running& running, FinishReason why, const std::string& error);
  // Every request and evaluation ends with `why` (mu_ held): the engine stops, or its group failed.
  void end_all(Running& running, FinishReason why, const std::string& error);
  void finish(RequestState& r, FinishReason why, const std::string& error = "");
  void emit(RequestState& r, int32_t token, TokenLogprobs* logprobs = nullptr);
  void deliver(RequestState& r, StreamEvent ev, const std::string& error);
  // Prefix cache: a request's first step starts from the cached prefix of its prompt (all but its last
  // token, whose logits it needs); its full pages are offered to the cache when its prompt is in and when
  // it ends.
  void attach_prefix(RequestState& r);
  void publish(RequestState& r);
  // One step's requests as the forward sees them (see step()).
  struct StepPlan;
  void plan(Running& running, StepPlan& p);
  // Speculation after the forward: the MTP module over every speculative request's new positions (fed
  // the forward's hidden states and the tokens that follow), chained for more drafts; fills drafts_.
  void draft(StepPlan& p, const Tensor& hidden, const std::vector<std::vector<int32_t>>& emitted);

  std::shared_ptr<ModelInstance> model_;
  TextDecoderFactory decoders_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<RequestState>> queue_;
  std::deque<EvalJob*> evals_;
  bool stop_ = false;
  int64_t prefill_chunk_ = 256;
  int64_t draft_tokens_ = 0;      // drafts per step (0: no speculation)
  std::vector<int32_t> eos_ids_;  // config.json's and generation_config.json's end-of-sequence ids
  std::thread thread_;
};

}  // namespace moert
