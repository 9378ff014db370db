#include "serve_tools.h"

#include <nlohmann/json.hpp>

namespace serve {
namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

// Arguments must be a JSON object; they are returned as its compact text.
bool json_object(const std::string& text, std::string* out) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  *out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return true;
}

// One call's body (between call_begin and call_end).
bool parse_call(const ToolMarkers& m, const std::string& body, ToolCall* call) {
  const size_t sep = body.find(m.sep);
  if (sep == std::string::npos) return false;
  const std::string head = trim(body.substr(0, sep)), rest = body.substr(sep + m.sep.size());
  std::string args;
  if (m.kimi) {
    // "functions.NAME:I": the whole header is the call's id.
    call->id = head;
    std::string name = head.rfind("functions.", 0) == 0 ? head.substr(10) : head;
    const size_t colon = name.rfind(':');
    call->name = colon == std::string::npos ? name : name.substr(0, colon);
    args = rest;
  } else if (head == "function" && rest.find("```") != std::string::npos) {
    // V3/R1: the type, then NAME, a newline and the arguments in a json code fence.
    const size_t nl = rest.find('\n');
    const size_t open = rest.find("```");
    call->name = trim(rest.substr(0, std::min(nl, open)));
    size_t from = rest.find('\n', open);
    const size_t close = rest.rfind("```");
    if (from == std::string::npos || close <= from) return false;
    args = rest.substr(from + 1, close - from - 1);
  } else {
    call->name = head;  // V3.1: NAME, then the arguments
    args = rest;
  }
  call->name = trim(call->name);
  return !call->name.empty() && json_object(trim(args), &call->arguments);
}

}  // namespace

const ToolMarkers& deepseek_tool_markers() {
  static const ToolMarkers m{"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
                             "<｜tool▁call▁end｜>",    "<｜tool▁sep｜>",       false};
  return m;
}

const ToolMarkers& kimi_tool_markers() {
  static const ToolMarkers m{"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>",
                             "<|tool_call_begin|>",          "<|tool_call_end|>",
                             "<|tool_call_argument_begin|>", true};
  return m;
}

bool parse_tool_calls(const ToolMarkers& m, const std::string& section, std::vector<ToolCall>* out) {
  out->clear();
  size_t at = section.find(m.section_begin);
  if (at == std::string::npos) return false;
  at += m.section_begin.size();
  const size_t end = section.find(m.section_end, at);
  const std::string body = section.substr(at, end == std::string::npos ? std::string::npos : end - at);
  // The end marker may be missing (max_tokens, or DeepSeek-V3's own template that drops it after one
  // call): every complete call counts.
  size_t p = 0;
  for (;;) {
    const size_t b = body.find(m.call_begin, p);
    if (b == std::string::npos) break;
    const size_t e = body.find(m.call_end, b);
    if (e == std::string::npos) return false;  // a call cut off
    ToolCall call;
    if (!parse_call(m, body.substr(b + m.call_begin.size(), e - b - m.call_begin.size()), &call))
      return false;
    out->push_back(std::move(call));
    p = e + m.call_end.size();
  }
  return !out->empty();
}

std::string ToolCallSplitter::feed(int32_t token, const std::string& piece, bool eos) {
  if (!in_section_ && (section_token_ < 0 || token != section_token_)) return piece;
  std::string content;
  if (!in_section_) {
    in_section_ = true;
    // A tokenizer that keeps the marker as text puts it in this piece, after any text released with it.
    const size_t at = piece.find(markers_->section_begin);
    if (at != std::string::npos)
      content = piece.substr(0, at);
    else
      content = piece;
  }
  if (token >= 0 && !eos) tokens_.push_back(token);
  return content;
}

}  // namespace serve
