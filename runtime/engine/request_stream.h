// The consumer's side of one generation request: the handle a host pulls tokens from, cancels and asks for
// usage. The engine's scheduler keeps the request's sequence state apart (engine/request_state.h) and
// reaches this handle only through deliver(), under its lock.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "engine/token_logprobs.h"

namespace moert {

enum class FinishReason : int32_t { kNone = 0, kLength = 1, kStop = 2, kEos = 3, kCancelled = 4, kError = 5 };

struct StreamEvent {
  int32_t token = -1;  // -1 for a final event that carries no token (cancel, error, held text)
  std::string text;    // UTF-8-safe piece (may be empty while text is held back)
  FinishReason finish = FinishReason::kNone;
  bool has_logprobs = false;  // the request asked for them and the event carries a token
  TokenLogprobs logprobs;
};

struct Usage {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // taken from the prefix cache instead of computed
  // Speculative decoding (MTP): main-model forwards after the prefill, tokens drafted, drafts accepted.
  int64_t decode_forwards = 0, draft_tokens = 0, accepted_drafts = 0;
  double time_to_first_token_s = 0.0, tokens_per_second = 0.0;
};

class RequestStream {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RequestStream(int64_t prompt_tokens) : prompt_tokens_(prompt_tokens), t_submit_(Clock::now()) {}

  // Waits up to `timeout` for the next event. kEvent: *ev is filled (the last event has finish != kNone);
  // kTimeout: nothing yet; kDone: the final event was already delivered. One consumer at a time.
  enum class Next { kEvent, kTimeout, kDone };
  Next next(StreamEvent* ev, std::chrono::milliseconds timeout);
  // Any thread; the scheduler ends the request at its next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  Usage usage() const;
  // The message of a request that finished with kError, "" otherwise. A copy taken under the lock: the
  // engine may be finishing the request while another thread asks.
  std::string error() const;
  FinishReason finish_reason() const;

  // The scheduler's side (the engine only).
  // Queues an event (final when ev.finish != kNone, with `error` for kError) and wakes the consumer.
  void deliver(StreamEvent ev, const std::string& error);
  // Usage counters, added as the scheduler learns them.
  void count_cached(int64_t n);
  void count_decode_forward();
  void count_drafts(int64_t drafted, int64_t accepted);

 private:
  std::atomic<bool> cancelled_{false};
  const int64_t prompt_tokens_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  FinishReason finish_ = FinishReason::kNone;
  bool done_delivered_ = false;
  std::string error_;
  int64_t generated_ = 0, cached_ = 0, decode_forwards_ = 0, drafted_ = 0, accepted_ = 0;
  Clock::time_point t_submit_, t_first_, t_end_;
};

}  // namespace moert
