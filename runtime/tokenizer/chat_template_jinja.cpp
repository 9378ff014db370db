#include "tokenizer/chat_template_jinja.h"

#include "util/error.h"

namespace moert::tok {

using nlohmann::json;
using nlohmann::ordered_json;

ordered_json chat_template_variables(const json& config) {
  ordered_json vars = ordered_json::object();
  if (!config.is_object()) return vars;
  // A special token is its text or an AddedToken object {"content": ...}.
  auto text = [](const json& t) -> const json* {
    if (t.is_string()) return &t;
    if (t.is_object() && t.contains("content") && t["content"].is_string()) return &t["content"];
    return nullptr;
  };
  for (const char* key :
       {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"})
    if (config.contains(key))
      if (const json* t = text(config[key])) vars[key] = t->get<std::string>();
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    ordered_json list = ordered_json::array();
    for (const json& t : config["additional_special_tokens"])
      if (const json* s = text(t)) list.push_back(s->get<std::string>());
    vars["additional_special_tokens"] = std::move(list);
  }
  return vars;
}

std::string render_jinja_chat(const jinja::Template& tmpl, const ordered_json& variables,
                              const std::string& messages_json, bool add_generation_prompt) {
  using jinja::Value;
  Value doc;
  try {
    doc = Value::parse_json(messages_json);  // linear in the text, however many keys an object has
  } catch (const jinja::TemplateError& e) {
    fail(ErrorCode::kInvalidArgument, std::string("chat template: messages are ") + e.what());
  }
  jinja::Dict context;
  try {
    const Value vars = Value::from_json(variables);
    if (vars.kind == jinja::Kind::kDict) context = *vars.dict;
  } catch (const jinja::TemplateError& e) {
    fail(ErrorCode::kInvalidArgument, std::string("chat template: ") + e.what());
  }
  context.set("tools", Value::none());
  context.set("documents", Value::none());
  if (doc.kind == jinja::Kind::kDict) {
    if (!doc.dict->find("messages"))
      fail(ErrorCode::kInvalidArgument, "chat template: the object has no 'messages'");
    for (const auto& [k, v] : doc.dict->items) context.set(k, v);
  } else {
    context.set("messages", doc);
  }
  if (!context.find("messages")->is_list())
    fail(ErrorCode::kInvalidArgument, "chat template: messages must be a JSON array");
  context.set("add_generation_prompt", Value::from(add_generation_prompt));
  return tmpl.render(Value::from(std::move(context)));
}

}  // namespace moert::tok
