// DeepSeek chat templates, rendered in C++ (no jinja engine). A template is recognised only when its text is
// exactly one of the known DeepSeek templates; anything else is Error(kUnsupported).
//
// Known templates: DeepSeek-V3's (tokenizer_config.json as released) and the variants DeepSeek derived from
// it, each a combination of three documented edits of the V3 text:
//   - system prompt: V3 joins every system message with "\n\n"; the older form (DeepSeek-V3 before its
//     update, R1-Distill) keeps only the last system message;
//   - reasoning: R1 drops the reasoning of earlier assistant turns, keeping only the text after the last
//     "</think>" (`content.split('</think>')[-1]`);
//   - generation prompt: "<｜Assistant｜>" (V3) or "<｜Assistant｜><think>\n" (R1 as updated).
// The V3 logic is reproduced exactly, including its quirks: the first tool call of a conversation opens
// "<｜tool▁calls▁begin｜>" and is not closed by itself; every later tool call (in this or a later message) is
// followed by "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>"; messages of other roles are ignored.
#pragma once
#include <optional>
#include <string>

namespace moert::tok {

struct ChatTemplateKind {
  bool join_system = true;        // V3: all system messages joined by "\n\n"; else the last one only
  bool strip_reasoning = false;   // R1: keep only the text after the last "</think>"
  bool think_generation = false;  // R1: the generation prompt ends with "<think>\n"
};

// The exact text of DeepSeek-V3's chat template.
const std::string& deepseek_v3_chat_template();
// The text of the known template with these features.
std::string deepseek_chat_template(const ChatTemplateKind& kind);
// nullopt when the template is not one of the known ones.
std::optional<ChatTemplateKind> recognise_chat_template(const std::string& template_text);

// Renders messages_json (array of messages, or {"messages": [...]}) as the template does. Throws
// Error(kInvalidArgument) where jinja would raise (bad JSON, missing/non-string content, malformed tools).
std::string render_chat(const ChatTemplateKind& kind, const std::string& bos_token,
                        const std::string& messages_json, bool add_generation_prompt);

}  // namespace moert::tok
