#include "serve_responses.h"

#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "serve_api_error.h"

namespace serve {
namespace {

using json = nlohmann::json;

// Pieces never split a UTF-8 sequence, but the prompt or a stop string may hold invalid bytes: replace
// them rather than throw while writing JSON.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json head_json(const ResponseHead& h, bool chunk) {
  return {{"id", h.id},
          {"object", h.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", h.created},
          {"model", h.model},
          {"system_fingerprint", "moert"}};
}

json finish_json(const char* finish_reason) {
  return finish_reason ? json(finish_reason) : json(nullptr);
}

}  // namespace

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char hex[25];
  std::snprintf(hex, sizeof hex, "%012llx%012llx", static_cast<unsigned long long>(rng() & 0xffffffffffffULL),
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return prefix + std::string(hex);
}

ResponseHead make_head(bool chat, const std::string& model) {
  return {chat, random_id(chat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)), model};
}

std::string completion_body(const ResponseHead& h, const std::vector<ChoiceBody>& choices, bool has_reasoning,
                            const Usage& u) {
  json j = head_json(h, false);
  j["choices"] = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceBody& b = choices[i];
    json choice = {{"index", i},
                   {"logprobs", b.logprobs ? *b.logprobs : json(nullptr)},
                   {"finish_reason", finish_json(b.finish_reason)}};
    if (h.chat) {
      json msg = {{"role", "assistant"},
                  {"content", b.tool_calls && b.content.empty() ? json(nullptr) : json(b.content)}};
      if (has_reasoning) msg["reasoning_content"] = b.reasoning;
      if (b.tool_calls) msg["tool_calls"] = *b.tool_calls;
      choice["message"] = std::move(msg);
    } else {
      choice["text"] = b.content;
    }
    j["choices"].push_back(std::move(choice));
  }
  j["usage"] = usage_json(u);
  return dump(j);
}

std::string chunk_event(const ResponseHead& h, int64_t index, bool role_only, const std::string& content,
                        const std::string& reasoning, const char* finish_reason, bool with_usage_null,
                        const json* logprobs, const json* tool_calls) {
  json j = head_json(h, true);
  json choice = {{"index", index},
                 {"logprobs", logprobs ? *logprobs : json(nullptr)},
                 {"finish_reason", finish_json(finish_reason)}};
  if (h.chat) {
    json delta = json::object();
    if (role_only) {
      delta = {{"role", "assistant"}, {"content", ""}};
    } else {
      if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
      if (!content.empty()) delta["content"] = content;
      if (tool_calls) delta["tool_calls"] = *tool_calls;
    }
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = content;
  }
  j["choices"] = json::array({std::move(choice)});
  if (with_usage_null) j["usage"] = nullptr;
  return "data: " + dump(j) + "\n\n";
}

std::string usage_event(const ResponseHead& h, const Usage& u) {
  json j = head_json(h, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(u);
  return "data: " + dump(j) + "\n\n";
}

std::string error_event(int status, const std::string& message) {
  return "data: " + error_body(status, message) + "\n\n";
}

std::string error_body(int status, const std::string& message, const std::string& param,
                       const std::string& code) {
  const char* type = status == 401   ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status == 429 ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  return dump(json{{"error", std::move(e)}});
}

}  // namespace serve
