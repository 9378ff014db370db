// moert's internal error type: one exception class whose code maps 1:1 onto the C API's moert_status.
#pragma once
#include <stdexcept>
#include <string>

namespace moert {

enum class ErrorCode {
  kInvalidArgument = 1,  // a caller passed something wrong (bad token id, bad option value)
  kIo = 2,               // a file could not be opened, read or mapped
  kFormat = 3,           // a file is malformed (safetensors header, config.json, tokenizer.json)
  kUnsupported = 4,      // a valid but unsupported configuration value
  kOutOfMemory = 5,      // an allocation or the KV-cache budget is exhausted
  kDevice = 6,           // a device (CUDA) error
  kCancelled = 7,        // the operation was cancelled by the caller
  kInternal = 8,         // a bug in moert
  kTimeout = 9,          // nothing happened within the time the caller allowed
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) {
  throw Error(code, message);
}

}  // namespace moert
