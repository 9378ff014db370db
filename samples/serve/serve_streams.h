// Every request is one moert stream; the registry bounds how many run (running plus queued in moert's
// engine), counts them for /health, and cancels them all at shutdown. A Generation owns one stream: its
// destructor cancels it if it still runs and frees it, so a client that goes away frees its KV pages.
#pragma once
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "moert/moert.h"

namespace serve {

class StreamRegistry {
 public:
  explicit StreamRegistry(int64_t max_streams) : max_(max_streams) {}
  // A slot for a new stream; ApiError 503 when every slot is taken or the server is stopping.
  void reserve();
  void release();
  // A request admitted (it holds one stream per choice): /health's requests_total.
  void count_request();
  void add(moert_stream* s);
  void remove(moert_stream* s);
  void cancel_all();
  void stop_admitting();
  int64_t active() const;
  int64_t max_streams() const { return max_; }
  int64_t requests_total() const;
  bool stopping() const;

 private:
  mutable std::mutex mu_;
  const int64_t max_;
  int64_t reserved_ = 0, total_ = 0;
  bool stopping_ = false;
  std::set<moert_stream*> live_;
};

struct StreamEvent {
  int32_t token = -1;
  int32_t finish = MOERT_FINISH_NONE;
  std::string text;
  // moert_stream_logprobs, for a request that asked for them and an event with a token.
  bool has_logprobs = false;
  float logprob = 0.0f;
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
};

class Generation {
 public:
  // Starts generating (ApiError 400 when moert refuses the request, 503 when no slot is free). logprobs:
  // gen has the "logprobs" option (each token event then carries them).
  Generation(StreamRegistry& reg, moert_model* model, const std::vector<int32_t>& prompt,
             const moert_options* gen, bool logprobs = false);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;
  // The next event within timeout_ms; false on a timeout.
  bool next(int32_t timeout_ms, StreamEvent* ev);
  // The next event, however long it takes.
  StreamEvent next();
  void cancel();
  int64_t generated_tokens() const;
  std::string error() const;  // of a stream that ended with MOERT_FINISH_ERROR

 private:
  StreamRegistry& reg_;
  moert_stream* s_ = nullptr;
  const bool logprobs_;
};

// OpenAI's finish_reason for a moert one.
const char* finish_reason_name(int32_t finish);

}  // namespace serve
