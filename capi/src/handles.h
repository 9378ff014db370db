// The structs behind the opaque handles of moert.h, and small helpers shared by the capi/ files.
#pragma once
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/served_model.h"
#include "engine/session.h"
#include "guard.h"

struct moert_model {
  std::shared_ptr<moert::ServedModel> service;
};

struct moert_tokenizer {
  std::shared_ptr<const moert::Tokenizer> impl;
};

struct moert_session {
  moert::Session session;  // holds the model
};

struct moert_stream {
  std::shared_ptr<moert::ServedModel> service;
  std::shared_ptr<moert::RequestStream> request;
  moert::StreamEvent current;  // the event last returned by moert_stream_next
  bool has_final = false;
  uint64_t seed = 0;     // the sampling seed in effect (given, or drawn fresh for a sampled request)
  bool sampled = false;  // temperature > 0
};

namespace moert::capi {

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
