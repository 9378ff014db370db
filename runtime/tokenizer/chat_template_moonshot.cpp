#include "tokenizer/chat_template_moonshot.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "tokenizer/chat_messages.h"
#include "tokenizer/jinja_lexer.h"
#include "util/error.h"

namespace moert::tok {

using nlohmann::json;

namespace {

// The canonical pieces of the template (canonical_jinja of Moonlight's text, cut where it varies).
constexpr std::string_view kFor = "{%formessageinmessages%}";
constexpr std::string_view kDefaultOpen =
    "{%ifloop.firstandmessages[0]['role']!='system'%}<|im_system|>system<|im_middle|>";
constexpr std::string_view kDefaultClose = "<|im_end|>{%endif%}";
constexpr std::string_view kBody =
    "{%ifmessage['role']=='system'%}<|im_system|>{%endif%}{%ifmessage['role']=='user'%}<|im_user|>{%endif%}"
    "{%ifmessage['role']=='assistant'%}<|im_assistant|>{%endif%}{{message['role']}}<|im_middle|>"
    "{{message['content']}}<|im_end|>{%endfor%}";
constexpr std::string_view kGeneration =
    "{%ifadd_generation_prompt%}<|im_assistant|>assistant<|im_middle|>{%endif%}";

bool take(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

[[noreturn]] void bad(const std::string& msg) {
  fail(ErrorCode::kInvalidArgument, "chat template: " + msg);
}

}  // namespace

std::string canonical_jinja(const std::string& t) {
  // What jinja renders of the text runs (jinja's whitespace rules, comments dropped), and each tag's body
  // without whitespace outside quotes, its quotes made single.
  std::vector<jinja::Segment> segments;
  try {
    segments = jinja::split_template(t);
  } catch (const Error&) {
    return t;  // an unterminated tag: no canonical form (compares unequal)
  }
  std::string out;
  for (const jinja::Segment& seg : segments) {
    if (seg.kind == jinja::Segment::kText) {
      out += seg.text;
      continue;
    }
    out += seg.kind == jinja::Segment::kExpr ? "{{" : "{%";
    char quote = 0;
    for (const char c : seg.text) {
      if (quote) {
        out += c == '"' && quote == '"' ? '\'' : c;
        if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
        out += '\'';
      } else if (!jinja::is_jinja_space(c)) {
        out += c;
      }
    }
    out += seg.kind == jinja::Segment::kExpr ? "}}" : "%}";
  }
  return out;
}

std::optional<MoonshotChat> recognise_moonshot_template(const std::string& template_text) {
  const std::string c = canonical_jinja(template_text);
  std::string_view s = c;
  MoonshotChat chat;
  if (!take(&s, kFor)) return std::nullopt;
  if (take(&s, kDefaultOpen)) {
    const size_t e = s.find(kDefaultClose);
    if (e == std::string_view::npos) return std::nullopt;
    const std::string_view def = s.substr(0, e);
    if (def.find("{{") != std::string_view::npos || def.find("{%") != std::string_view::npos)
      return std::nullopt;
    chat.default_system = std::string(def);
    s.remove_prefix(e + kDefaultClose.size());
  }
  if (!take(&s, kBody)) return std::nullopt;
  chat.generation_prompt = take(&s, kGeneration);
  if (!s.empty()) return std::nullopt;
  return chat;
}

std::string render_moonshot_chat(const MoonshotChat& chat, const std::string& messages_json,
                                 bool add_generation_prompt) {
  const json doc = parse_chat_messages(messages_json);
  const json* messages = &doc;
  std::string out;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = "message " + std::to_string(i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) bad(where + " has no string 'role'");
    if (!m.contains("content") || !m["content"].is_string()) bad(where + ": 'content' must be a string");
    const std::string& role = m["role"].get_ref<const std::string&>();
    if (i == 0 && chat.default_system && role != "system")
      out += "<|im_system|>system<|im_middle|>" + *chat.default_system + "<|im_end|>";
    if (role == "system") out += "<|im_system|>";
    if (role == "user") out += "<|im_user|>";
    if (role == "assistant") out += "<|im_assistant|>";
    out += role;
    out += "<|im_middle|>";
    out += m["content"].get_ref<const std::string&>();
    out += "<|im_end|>";
  }
  if (add_generation_prompt && chat.generation_prompt) out += "<|im_assistant|>assistant<|im_middle|>";
  return out;
}

}  // namespace moert::tok
