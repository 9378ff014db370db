// Chat templates that moert has no native renderer for, rendered by its jinja engine (jinja.h) with the
// variables transformers' apply_chat_template gives them.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/jinja.h"

namespace moert::tok {

// The special-token variables of tokenizer_config.json that transformers passes to a template: bos_token,
// eos_token, unk_token, pad_token, sep_token, cls_token, mask_token (each as its text, where set) and
// additional_special_tokens (a list of texts).
nlohmann::ordered_json chat_template_variables(const nlohmann::json& tokenizer_config);

// Renders messages_json with the template. messages_json: a JSON array of messages, or an object whose
// "messages" is one and whose other members are further template variables ("tools", "documents", or a
// template's own switch such as "thinking"); tools and documents are None where absent, as in transformers.
// variables: chat_template_variables (a member of messages_json of the same name overrides it).
// Throws Error(kInvalidArgument) for bad JSON or where the template raises.
std::string render_jinja_chat(const jinja::Template& tmpl, const nlohmann::ordered_json& variables,
                              const std::string& messages_json, bool add_generation_prompt);

}  // namespace moert::tok
