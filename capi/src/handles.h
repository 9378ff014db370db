// The structs behind the opaque handles of moert.h, and small helpers shared by the capi/ files.
#pragma once
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/model_service.h"
#include "guard.h"
#include "kv/latent_cache.h"

struct moert_model {
  std::shared_ptr<moert::ModelService> service;
};

struct moert_tokenizer {
  std::shared_ptr<const moert::Tokenizer> impl;
};

struct moert_session {
  std::shared_ptr<moert::ModelService> service;  // keeps the model alive
  moert::KvSequence kv;
  std::vector<int32_t> tokens;     // what kv holds
  std::vector<float> last_logits;  // after tokens.back() (empty after a truncate): for moert_session_export
};

struct moert_stream {
  std::shared_ptr<moert::ModelService> service;
  std::shared_ptr<moert::Request> request;
  moert::StreamEvent current;  // the event last returned by moert_stream_next
  bool has_final = false;
  uint64_t seed = 0;     // the sampling seed in effect (given, or drawn fresh for a sampled request)
  bool sampled = false;  // temperature > 0
};

namespace moert::capi {

// A KV image (moert_session_export's) checked against the model and loaded into a new sequence of its cache:
// its tokens and last logits out. Error(kFormat) naming the failed check, kOutOfMemory for a full cache.
moert::KvSequence import_image(moert_model* model, const void* data, size_t size,
                               std::vector<int32_t>* tokens, std::vector<float>* logits);

// The required-size protocol: writes s with its NUL into buf[cap] when it fits; *needed (if given) gets the
// size. buf NULL with cap 0 only asks. Throws kInvalidArgument when cap is too small (nothing written).
inline void write_string(const std::string& s, char* buf, size_t cap, size_t* needed) {
  if (needed) *needed = s.size() + 1;
  if (!buf && cap == 0) return;
  require(buf, "buf");
  if (cap < s.size() + 1)
    fail(ErrorCode::kInvalidArgument, "buffer of " + std::to_string(cap) + " bytes is too small; " +
                                          std::to_string(s.size() + 1) + " needed");
  std::memcpy(buf, s.c_str(), s.size() + 1);
}

}  // namespace moert::capi
