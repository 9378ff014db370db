// The generation engine: a request queue and one scheduler thread per model that batches every running
// request into each forward step (continuous batching: requests join and leave between steps), splits
// long prompts into chunks so they do not stall running streams (chunked prefill), samples, and delivers
// tokens to pull-based streams. KV pages come from the model's shared budget: a request that cannot fit
// fails alone with a clear error and the others continue.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/sampling.h"
#include "engine/loaded_model.h"
#include "engine/text_stream.h"

namespace moert {

struct GenerationParams {
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  bool operator==(const GenerationParams&) const = default;
};

enum class FinishReason : int32_t { kNone = 0, kLength = 1, kStop = 2, kEos = 3, kCancelled = 4, kError = 5 };

struct StreamEvent {
  int32_t token = -1;  // -1 for a final event that carries no token (cancel, error, held text)
  std::string text;    // UTF-8-safe piece (may be empty while text is held back)
  FinishReason finish = FinishReason::kNone;
};

struct Usage {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // taken from the prefix cache instead of computed
  // Speculative decoding (MTP): main-model forwards after the prefill, tokens drafted, drafts accepted.
  int64_t decode_forwards = 0, draft_tokens = 0, accepted_drafts = 0;
  double time_to_first_token_s = 0.0, tokens_per_second = 0.0;
};

class Request {
 public:
  // Waits up to `timeout` for the next event. kEvent: *ev is filled (the last event has finish != kNone);
  // kTimeout: nothing yet; kDone: the final event was already delivered. One consumer at a time.
  enum class Next { kEvent, kTimeout, kDone };
  Next next(StreamEvent* ev, std::chrono::milliseconds timeout);
  void cancel() { cancelled_.store(true); }
  Usage usage() const;
  // The message of a request that finished with kError, "" otherwise. A copy taken under the lock: the
  // engine may be finishing the request while another thread asks.
  std::string error() const;
  FinishReason finish_reason() const;

 private:
  friend class Engine;
  std::vector<int32_t> prompt_;
  GenerationParams params_;
  std::atomic<bool> cancelled_{false};
  // Scheduler state (scheduler thread only).
  KvSequence kv_;
  bool prefix_looked_up_ = false;
  std::vector<float> resume_logits_;  // a resumed request's: its first token is sampled from them
  bool speculative_ = false;          // drafts with the MTP module (the engine's setting, no penalties)
  std::vector<int32_t> drafts_;       // drafted tokens to follow last_token_, verified by the next step
  std::vector<int32_t> feed_;         // this step's tokens: last_token_ then the drafts
  std::vector<int32_t> mtp_next_;     // this step's MTP input: the token after each position it covers
  std::vector<int32_t> output_;  // the tokens emitted so far (with the prompt: what kv_ holds, and one more)
  int64_t prefilled_ = 0;
  int32_t last_token_ = -1;
  int64_t generated_ = 0;
  int64_t cached_ = 0, decode_forwards_ = 0, drafted_ = 0, accepted_ = 0;  // Usage's (under mu_)
  TokenHistory history_;
  SamplingRng rng_;
  std::unique_ptr<TokenTextDecoder> decoder_;
  std::unique_ptr<StopMatcher> stops_;
  // Shared with the consumer.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  FinishReason finish_ = FinishReason::kNone;
  bool done_delivered_ = false;
  std::string error_;
  std::chrono::steady_clock::time_point t_submit_, t_first_, t_end_;
};

class Engine {
 public:
  Engine(std::shared_ptr<LoadedModel> model, TextDecoderFactory decoders);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; the returned handle streams its tokens. Throws Error(kInvalidArgument) for an empty
  // prompt, a bad token id or a prompt longer than the context.
  std::shared_ptr<Request> submit(std::vector<int32_t> prompt, GenerationParams params);
  // Continues a sequence computed elsewhere (a KV image: prefill/decode separation): `kv` holds every
  // token of `tokens`, `last_logits` are the logits after the last one; the first token is sampled from
  // them, as the request that computed them would have. The request's prompt is `tokens`.
  std::shared_ptr<Request> submit_resumed(std::vector<int32_t> tokens, KvSequence kv,
                                          std::vector<float> last_logits, GenerationParams params);

  // Logits for `n` tokens appended to `kv` (all n rows, or the last only), computed by the scheduler in its
  // next step, batched with the running requests (the same step batch and forward). Blocks until done; the
  // caller keeps kv, tokens and logits alive and uses kv from no other thread meanwhile. Throws what the
  // forward threw (kInvalidArgument for a bad token id or a context overflow, kOutOfMemory for a full cache;
  // kv is then unchanged). Without expert parallelism only (its steps are the group's collectives).
  void eval(KvSequence& kv, const int32_t* tokens, int64_t n, bool all_logits, float* logits);

  // Speculative decoding with the checkpoint's MTP module (load options speculative, draft_tokens): on
  // when the module is loaded and speculative is "auto", without expert parallelism.
  bool speculative() const { return draft_tokens_ > 0; }

  int64_t prefill_chunk() const { return prefill_chunk_; }
  void set_prefill_chunk(int64_t n) { prefill_chunk_ = n; }

 private:
  // A checked request of `prompt`, not yet queued (no lock taken).
  std::shared_ptr<Request> make_request(std::vector<int32_t> prompt, GenerationParams params);
  void loop();
  // Expert parallelism: every rank's engine steps together (see engine.cpp).
  void loop_ep(ep::ExpertParallel& ep);
  struct EvalJob;
  void step(std::vector<std::shared_ptr<Request>>& running, std::vector<EvalJob*> evals = {},
            bool collective = false);
  // Continuous batching: waiting requests join `running` between steps, up to max_batch (mu_ held).
  void admit_queued(std::vector<std::shared_ptr<Request>>& running);
  void finish(Request& r, FinishReason why, const std::string& error = "");
  void emit(Request& r, int32_t token);
  void deliver(Request& r, StreamEvent ev, const std::string& error);
  // Prefix cache: a request's first step starts from the cached prefix of its prompt (all but its last
  // token, whose logits it needs); its full pages are offered to the cache when its prompt is in and when
  // it ends.
  void attach_prefix(Request& r);
  void publish(Request& r);
  // One step's requests as the forward sees them (see step()).
  struct StepPlan;
  void plan(std::vector<std::shared_ptr<Request>>& running, StepPlan& p);
  // Speculation after the forward: the MTP module over every speculative request's new positions (fed
  // the forward's hidden states and the tokens that follow), chained for more drafts; fills drafts_.
  void draft(StepPlan& p, const Tensor& hidden, const std::vector<std::vector<int32_t>>& emitted);

  std::shared_ptr<LoadedModel> model_;
  TextDecoderFactory decoders_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;
  std::deque<EvalJob*> evals_;
  bool stop_ = false;
  int64_t prefill_chunk_ = 256;
  int64_t draft_tokens_ = 0;  // drafts per step (0: no speculation)
  std::thread thread_;
};

}  // namespace moert
