// Tool calls in a reply, in the checkpoint's own syntax, turned into OpenAI's tool_calls:
//   DeepSeek-V3/R1:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
//   DeepSeek-V3.1:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
//   Kimi-K2:
//   <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:I<|tool_call_argument_begin|>ARGS<|tool_call_end|>...<|tool_calls_section_end|>
// The section starts at its first marker token (found by token id, so a tokenizer that marks the markers
// special, and drops them from the text, is read the same); the text before it is content. No moert here:
// the server gives it token ids and text.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace serve {

struct ToolMarkers {
  std::string section_begin, section_end, call_begin, call_end, sep;
  bool kimi = false;  // Kimi-K2's call header "functions.NAME:I" (also the call's id)
};
const ToolMarkers& deepseek_tool_markers();
const ToolMarkers& kimi_tool_markers();

struct ToolCall {
  std::string id;               // Kimi-K2's own; empty for DeepSeek's (the server makes one)
  std::string name, arguments;  // arguments: a JSON object's text
};

// Parses a section (its text from section_begin, markers included). False when it is malformed (no call, a
// call without a name, or arguments that are not a JSON object): the server then returns the text as
// content, as vLLM's parsers do.
bool parse_tool_calls(const ToolMarkers& m, const std::string& section, std::vector<ToolCall>* out);

// Splits a reply's events into content and a tool-call section.
class ToolCallSplitter {
 public:
  // markers null or section_token < 0: off (all is content).
  ToolCallSplitter(const ToolMarkers* markers, int32_t section_token)
      : markers_(markers), section_token_(markers ? section_token : -1) {}
  // The part of an event's text piece that is content: all of it before the section, the text before
  // the marker in the event that opens it, nothing after. `token` < 0 (no token) and the end-of-sequence
  // token (eos) are kept out of the section.
  std::string feed(int32_t token, const std::string& piece, bool eos);
  bool in_section() const { return in_section_; }
  const std::vector<int32_t>& section_tokens() const { return tokens_; }
  const ToolMarkers* markers() const { return section_token_ >= 0 ? markers_ : nullptr; }

 private:
  const ToolMarkers* markers_;
  int32_t section_token_;
  bool in_section_ = false;
  std::vector<int32_t> tokens_;
};

}  // namespace serve
