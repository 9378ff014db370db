#include "engine/request_stream.h"

namespace moert {

RequestStream::Next RequestStream::next(StreamEvent* ev, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (events_.empty() && done_delivered_) return Next::kDone;
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return Next::kTimeout;
  *ev = std::move(events_.front());
  events_.pop_front();
  if (ev->finish != FinishReason::kNone) done_delivered_ = true;
  return Next::kEvent;
}

Usage RequestStream::usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  Usage u;
  u.prompt_tokens = prompt_tokens_;
  u.generated_tokens = generated_;
  u.cached_prompt_tokens = cached_;
  u.decode_forwards = decode_forwards_;
  u.draft_tokens = drafted_;
  u.accepted_drafts = accepted_;
  if (generated_ > 0) {
    u.time_to_first_token_s = std::chrono::duration<double>(t_first_ - t_submit_).count();
    const auto end = finish_ == FinishReason::kNone ? Clock::now() : t_end_;
    const double decode_s = std::chrono::duration<double>(end - t_first_).count();
    u.tokens_per_second = generated_ > 1 && decode_s > 0 ? (generated_ - 1) / decode_s : 0.0;
  }
  return u;
}

std::string RequestStream::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_ == FinishReason::kError ? error_ : std::string();
}

FinishReason RequestStream::finish_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_;
}

void RequestStream::deliver(StreamEvent ev, const std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ev.token >= 0) {
      if (generated_ == 0) t_first_ = Clock::now();
      ++generated_;
    }
    if (ev.finish != FinishReason::kNone) {
      finish_ = ev.finish;
      error_ = error;
      t_end_ = Clock::now();
    }
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

void RequestStream::count_cached(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  cached_ = n;
}

void RequestStream::count_decode_forward() {
  std::lock_guard<std::mutex> lock(mu_);
  ++decode_forwards_;
}

void RequestStream::count_drafts(int64_t drafted, int64_t accepted) {
  std::lock_guard<std::mutex> lock(mu_);
  drafted_ += drafted;
  accepted_ += accepted;
}

}  // namespace moert
