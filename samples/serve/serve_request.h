// An OpenAI request (/v1/chat/completions or /v1/completions) checked field by field and turned into a
// prompt of token ids and moert generation options. Every problem is an ApiError naming the field.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "moert/moert.h"
#include "serve_model.h"

namespace serve {

struct GenRequest {
  bool chat = false;
  int64_t n = 1;  // choices: each its own moert stream
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;
  std::optional<double> temperature, top_p, min_p, presence_penalty, frequency_penalty, repetition_penalty;
  std::optional<int64_t> top_k, seed;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // -1: no logprobs; else the most likely tokens per step to report (chat: logprobs true with
  // top_logprobs; completions: logprobs N).
  int32_t logprobs = -1;
  bool token_ids = false;  // vLLM's return_tokens_as_token_ids: logprobs name tokens "token_id:N"
  std::vector<std::pair<int32_t, double>> logit_bias;  // OpenAI's, {"TOKEN_ID": bias}
  bool render_tools = false;        // tools given: the template (or the system prompt) gets them
  bool tools = false;               // read the reply for tool calls (tool_choice "auto")
  bool parallel_tool_calls = true;  // false: the first call only
};

// Parses and checks a request body. Throws ApiError (400 naming the field, 404 for an unknown model).
GenRequest parse_request(const std::string& body, bool chat, const ServedModel& model);

// The request's moert generation options (new; free with moert_options_free). Throws ApiError(400) when
// moert refuses a value (its message names the key).
moert_options* generation_options(const GenRequest& r);

}  // namespace serve
