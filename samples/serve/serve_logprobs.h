// OpenAI's `logprobs` objects from a stream's token events. Chat: {"content": [{"token", "logprob", "bytes",
// "top_logprobs": [...]}, ...], "refusal": null}, as the chat API (and vLLM) give them; completions: the
// legacy {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}. A token's text is
// its own decoding (special tokens kept; a byte sequence cut inside a character reads as U+FFFD, as vLLM
// reports it), its bytes that text's UTF-8; with vLLM's extension return_tokens_as_token_ids a token is
// written "token_id:N" instead. The end-of-sequence token is not part of the content and gets no entry; the
// tokens of a stop string do, as vLLM gives them.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "serve_model.h"
#include "serve_streams.h"

namespace serve {

class LogprobsCollector {
 public:
  LogprobsCollector(const ServedModel& model, bool chat, bool token_ids = false)
      : model_(model), chat_(chat), token_ids_(token_ids) {}
  // Adds the event's token, when it carries log probabilities and belongs to the content.
  void add(const StreamEvent& ev);
  bool empty() const { return (chat_ ? items_ : tokens_).empty(); }
  // The entries added since the last take, as the response's "logprobs" value; empty() after.
  nlohmann::json take();

 private:
  nlohmann::json entry(int32_t id, float logprob) const;
  std::string text_of(int32_t id) const;

  const ServedModel& model_;
  const bool chat_, token_ids_;
  int64_t text_offset_ = 0;                         // completions: characters of the tokens' text so far
  nlohmann::json items_ = nlohmann::json::array();  // chat: entries
  nlohmann::json tokens_ = nlohmann::json::array(), token_logprobs_ = nlohmann::json::array(),
                 top_ = nlohmann::json::array(), offsets_ = nlohmann::json::array();  // completions
};

}  // namespace serve
