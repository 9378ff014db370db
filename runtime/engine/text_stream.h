// Turns a request's generated tokens into text pieces and applies stop strings across token boundaries:
// text that could still be the start of a stop string is held back until it is known not to be.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace moert {

// Incremental detokenizer: returns the new complete UTF-8 text that `token` adds (possibly empty).
class TokenTextDecoder {
 public:
  virtual ~TokenTextDecoder() = default;
  virtual std::string push(int32_t token) = 0;
  virtual std::string flush() = 0;  // whatever is held back at the end (invalid tails become U+FFFD)
};
using TextDecoderFactory = std::function<std::unique_ptr<TokenTextDecoder>()>;

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Adds text; returns what may be emitted now. Sets *stopped when a stop string completed (the stop string
  // and everything after it are dropped).
  std::string push(const std::string& text, bool* stopped);
  std::string flush();  // at the end of generation: the held text

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace moert
