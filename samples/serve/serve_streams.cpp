#include "serve_streams.h"

#include <vector>

#include "serve_api_error.h"
#include "serve_text.h"

namespace serve {

void StreamRegistry::reserve() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) throw ApiError(503, "the server is shutting down");
  if (reserved_ >= max_)
    throw ApiError(503,
                   "the server is busy: " + std::to_string(max_) + " requests are in flight; retry later", "",
                   "server_busy");
  ++reserved_;
}

void StreamRegistry::count_request() {
  std::lock_guard<std::mutex> lock(mu_);
  ++total_;
}

void StreamRegistry::release() {
  std::lock_guard<std::mutex> lock(mu_);
  --reserved_;
}

void StreamRegistry::add(moert_stream* s) {
  std::lock_guard<std::mutex> lock(mu_);
  live_.insert(s);
  if (stopping_) moert_stream_cancel(s);
}

void StreamRegistry::remove(moert_stream* s) {
  std::lock_guard<std::mutex> lock(mu_);
  live_.erase(s);
}

void StreamRegistry::cancel_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (moert_stream* s : live_) moert_stream_cancel(s);
}

void StreamRegistry::stop_admitting() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
}

int64_t StreamRegistry::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_;
}

int64_t StreamRegistry::requests_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

bool StreamRegistry::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

Generation::Generation(StreamRegistry& reg, moert_model* model, const std::vector<int32_t>& prompt,
                       const moert_options* gen, bool logprobs)
    : reg_(reg), logprobs_(logprobs) {
  reg_.reserve();
  if (moert_generate_tokens(model, prompt.data(), prompt.size(), gen, &s_) != MOERT_OK) {
    const std::string msg = moert_last_error();
    reg_.release();
    throw ApiError(400, msg);
  }
  reg_.add(s_);
}

Generation::~Generation() {
  reg_.remove(s_);
  moert_stream_free(s_);  // cancels it if it still runs: its KV pages go back to the budget
  reg_.release();
}

bool Generation::next(int32_t timeout_ms, StreamEvent* ev) {
  int32_t token = -1, finish = 0;
  const moert_status st = moert_stream_next(s_, timeout_ms, &token, &finish);
  if (st == MOERT_ERR_TIMEOUT) return false;
  if (st != MOERT_OK) throw ApiError(500, std::string("moert_stream_next: ") + moert_last_error());
  ev->token = token;
  ev->finish = finish;
  std::optional<std::string> text =
      read_text([&](char* buf, size_t cap, size_t* need) { return moert_stream_text(s_, buf, cap, need); });
  if (!text) throw ApiError(500, std::string("moert_stream_text: ") + moert_last_error());
  ev->text = std::move(*text);
  ev->has_logprobs = logprobs_ && token >= 0;
  if (ev->has_logprobs) {
    size_t n = 0;
    if (moert_stream_logprobs(s_, &ev->logprob, nullptr, nullptr, 0, &n) != MOERT_OK)
      throw ApiError(500, std::string("moert_stream_logprobs: ") + moert_last_error());
    ev->top_ids.resize(n);
    ev->top_logprobs.resize(n);
    if (moert_stream_logprobs(s_, nullptr, ev->top_ids.data(), ev->top_logprobs.data(), n, &n) != MOERT_OK)
      throw ApiError(500, std::string("moert_stream_logprobs: ") + moert_last_error());
  }
  return true;
}

StreamEvent Generation::next() {
  StreamEvent ev;
  while (!next(1000, &ev)) {
  }
  return ev;
}

void Generation::cancel() {
  moert_stream_cancel(s_);
}

int64_t Generation::generated_tokens() const {
  int64_t n = 0;
  moert_stream_usage(s_, nullptr, &n, nullptr, nullptr);
  return n;
}

std::string Generation::error() const {
  return read_text(
             [&](char* buf, size_t cap, size_t* need) { return moert_stream_error(s_, buf, cap, need); })
      .value_or("");
}

const char* finish_reason_name(int32_t finish) {
  switch (finish) {
    case MOERT_FINISH_LENGTH:
      return "length";
    case MOERT_FINISH_STOP:
    case MOERT_FINISH_EOS:
      return "stop";
    default:
      return nullptr;
  }
}

}  // namespace serve
