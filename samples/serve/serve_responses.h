// OpenAI response bodies: chat.completion / text_completion objects, their streamed chunks, usage.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace serve {

struct ResponseHead {
  bool chat = false;
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
};

ResponseHead make_head(bool chat, const std::string& model);
// prefix and 24 random hex digits: a response's id ("chatcmpl-..."), a tool call's ("call_...").
std::string random_id(const char* prefix);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// One choice of a whole response. reasoning is only written when the response has reasoning; logprobs (the
// choice's "logprobs", null when not given) when the request asked for them; tool_calls (chat: the
// message's, its content then null when empty) when the reply called tools.
struct ChoiceBody {
  std::string content, reasoning;
  const char* finish_reason = nullptr;
  const nlohmann::json* logprobs = nullptr;
  const nlohmann::json* tool_calls = nullptr;
};

// The whole (non-streamed) response: its choices in index order.
std::string completion_body(const ResponseHead& h, const std::vector<ChoiceBody>& choices, bool has_reasoning,
                            const Usage& u);

// One server-sent event carrying a chunk of choice `index`: a delta of content and/or reasoning (chat), or
// text (completions); role_only: the first chat chunk ({"role": "assistant", "content": ""}). finish_reason
// may be null. with_usage_null: "usage": null (when the client asked for usage in the last chunk).
// logprobs: those of the chunk's tokens (null when not given); tool_calls: the delta's (chat, each with its
// "index").
std::string chunk_event(const ResponseHead& h, int64_t index, bool role_only, const std::string& content,
                        const std::string& reasoning, const char* finish_reason, bool with_usage_null,
                        const nlohmann::json* logprobs = nullptr, const nlohmann::json* tool_calls = nullptr);
// The last chunk of stream_options.include_usage: no choices, the usage.
std::string usage_event(const ResponseHead& h, const Usage& u);
// An error inside a stream (after the 200 was sent): data: {"error": {...}}.
std::string error_event(int status, const std::string& message);
inline const char* done_event() {
  return "data: [DONE]\n\n";
}

}  // namespace serve
