#include "tokenizer/chat_template.h"

#include "tokenizer/chat_messages.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace moert::tok {

using nlohmann::json;

namespace {

const char* const kV3Template =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% end"
    "if %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_pro"
    "mpt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'syste"
    "m' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content"
    "'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt"
    " + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.sy"
    "stem_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.i"
    "s_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] =="
    " 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool i"
    "n message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜to"
    "ol▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```j"
    "son' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set "
    "ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁s"
    "ep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments']"
    " + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endi"
    "f %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] "
    "is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁o"
    "f▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['conte"
    "nt'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{"
    "%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁ou"
    "tput▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = f"
    "alse %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'"
    "}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% en"
    "dif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}";

// The edits that make the variants out of the V3 text.
const char* const kSystemJoin =
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', "
    "is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if "
    "ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set "
    "ns.is_first_sp = "
    "false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif "
    "%}{%- endif %}{%- endfor %}";
const char* const kSystemLast =
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for "
    "message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] "
    "%}{%- endif %}{%- endfor %}";
const char* const kAssistantPlain =
    "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}";
const char* const kAssistantStrip =
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = "
    "content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- "
    "endif %}";
const char* const kGenPlain = "{{'<｜Assistant｜>'}}{% endif %}";
const char* const kGenThink = "{{'<｜Assistant｜><think>\n'}}{% endif %}";

void replace_once(std::string* s, const std::string& from, const std::string& to) {
  const size_t at = s->find(from);
  if (at == std::string::npos || s->find(from, at + 1) != std::string::npos)
    fail(ErrorCode::kInternal, "chat template: edit anchor not found once: " + from);
  s->replace(at, from.size(), to);
}

[[noreturn]] void bad(const std::string& msg) {
  fail(ErrorCode::kInvalidArgument, "chat template: " + msg);
}

// message[key] as a string, or the error jinja would raise concatenating it.
const std::string& str_field(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key)) bad(where + " has no '" + key + "'");
  const json& v = obj[key];
  if (!v.is_string()) bad(where + ": '" + key + "' must be a string");
  return v.get_ref<const std::string&>();
}

std::string role_of(const json& m) {
  if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) return {};
  return m["role"].get<std::string>();
}

}  // namespace

const std::string& deepseek_v3_chat_template() {
  static const std::string t(kV3Template);
  return t;
}

std::string deepseek_chat_template(const ChatTemplateKind& kind) {
  std::string t = deepseek_v3_chat_template();
  if (!kind.join_system) replace_once(&t, kSystemJoin, kSystemLast);
  if (kind.strip_reasoning) replace_once(&t, kAssistantPlain, kAssistantStrip);
  if (kind.think_generation) replace_once(&t, kGenPlain, kGenThink);
  return t;
}

std::optional<ChatTemplateKind> recognise_chat_template(const std::string& text) {
  for (int bits = 0; bits < 8; ++bits) {
    ChatTemplateKind k;
    k.join_system = (bits & 1) == 0;
    k.strip_reasoning = (bits & 2) != 0;
    k.think_generation = (bits & 4) != 0;
    if (deepseek_chat_template(k) == text) return k;
  }
  return std::nullopt;
}

json parse_chat_messages(const std::string& messages_json) {
  json doc;
  try {
    doc = json::parse(messages_json);
  } catch (const json::exception& e) {
    bad(std::string("messages are not valid JSON: ") + e.what());
  }
  if (doc.is_object()) {
    if (!doc.contains("messages")) bad("the object has no 'messages'");
    doc = json(doc["messages"]);
  }
  if (!doc.is_array()) bad("messages must be a JSON array");
  return doc;
}

std::string render_chat(const ChatTemplateKind& kind, const std::string& bos_token,
                        const std::string& messages_json, bool add_generation_prompt) {
  const json doc = parse_chat_messages(messages_json);
  const json* messages = &doc;

  // ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true)
  bool is_first = false, is_tool = false, is_output_first = true, is_first_sp = true;
  std::string system_prompt;
  size_t index = 0;
  for (const json& m : *messages) {
    const std::string where = "message " + std::to_string(index++);
    if (role_of(m) != "system") continue;
    const std::string& content = str_field(m, "content", where);
    if (!kind.join_system) {
      system_prompt = content;
    } else if (is_first_sp) {
      system_prompt += content;
      is_first_sp = false;
    } else {
      system_prompt += "\n\n";
      system_prompt += content;
    }
  }
  std::string out = bos_token + system_prompt;
  index = 0;
  for (const json& m : *messages) {
    const std::string where = "message " + std::to_string(index++);
    const std::string role = role_of(m);
    if (role == "user") {
      is_tool = false;
      out += "<｜User｜>";
      out += str_field(m, "content", where);
    }
    const bool content_none = m.is_object() && m.contains("content") && m["content"].is_null();
    if (role == "assistant" && content_none) {
      is_tool = false;
      if (m.contains("tool_calls")) {  // an undefined tool_calls iterates as empty
        const json& calls = m["tool_calls"];
        if (!calls.is_array()) bad(where + ": 'tool_calls' must be an array");
        size_t k = 0;
        for (const json& tool : calls) {
          const std::string tw = where + " tool call " + std::to_string(k++);
          const std::string& type = str_field(tool, "type", tw);
          if (!tool.contains("function")) bad(tw + " has no 'function'");
          const json& fn = tool["function"];
          const std::string& name = str_field(fn, "name", tw + " function");
          const std::string& args = str_field(fn, "arguments", tw + " function");
          const std::string call =
              type + "<｜tool▁sep｜>" + name + "\n```json\n" + args + "\n```<｜tool▁call▁end｜>";
          if (!is_first) {
            out += "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" + call;
            is_first = true;
          } else {
            out += "\n<｜tool▁call▁begin｜>" + call + "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>";
          }
        }
      }
    }
    if (role == "assistant" && !content_none) {
      if (is_tool) {
        out += "<｜tool▁outputs▁end｜>" + str_field(m, "content", where) + "<｜end▁of▁sentence｜>";
        is_tool = false;
      } else {
        std::string content = str_field(m, "content", where);
        if (kind.strip_reasoning) {
          const size_t at = content.rfind("</think>");
          if (at != std::string::npos) content = content.substr(at + 8);
        }
        out += "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>";
      }
    }
    if (role == "tool") {
      is_tool = true;
      const std::string& content = str_field(m, "content", where);
      if (is_output_first) {
        out += "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + content + "<｜tool▁output▁end｜>";
        is_output_first = false;
      } else {
        out += "\n<｜tool▁output▁begin｜>" + content + "<｜tool▁output▁end｜>";
      }
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (add_generation_prompt && !is_tool)
    out += kind.think_generation ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>";
  return out;
}

}  // namespace moert::tok
