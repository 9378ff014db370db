// Moonshot's chat template (Moonlight-16B-A3B-Instruct's tokenizer_config.json), rendered in C++:
//   <|im_system|>system<|im_middle|>DEFAULT<|im_end|>      (when the first message is not a system one)
//   <|im_system|> / <|im_user|> / <|im_assistant|> by role, then ROLE<|im_middle|>CONTENT<|im_end|>
//   <|im_assistant|>assistant<|im_middle|>                  (add_generation_prompt)
// Recognised by structure, not by exact text: the template is compared after jinja's own whitespace rules
// (HF renders with trim_blocks and lstrip_blocks; `-` strips) and with whitespace inside tags dropped, so a
// re-indented copy is recognised too; DEFAULT is read from the template, and the default-system and
// generation-prompt blocks may each be absent. Kimi-K2's template (tools, tool calls) is not this one.
#pragma once
#include <optional>
#include <string>

namespace moert::tok {

struct MoonshotChat {
  std::optional<std::string> default_system;  // injected before a conversation without a system message
  bool generation_prompt = true;              // the template has the add_generation_prompt block
};

// nullopt when the template is not Moonshot's.
std::optional<MoonshotChat> recognise_moonshot_template(const std::string& template_text);

// Renders messages_json (array of messages, or {"messages": [...]}) as the template does. Throws
// Error(kInvalidArgument) for bad JSON, a message without a string role, or content that is not a string
// (jinja would print None or a list's repr into the prompt).
std::string render_moonshot_chat(const MoonshotChat& chat, const std::string& messages_json,
                                 bool add_generation_prompt);

// The template text in a canonical form (exposed for tests): what jinja renders of each text run (the jinja
// lexer's split_template), and each tag without whitespace or whitespace-control marks, double quotes made
// single.
std::string canonical_jinja(const std::string& template_text);

}  // namespace moert::tok
