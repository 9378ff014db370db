#include "tokenizer/chat_template_moonshot.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "tokenizer/chat_messages.h"
#include "util/error.h"

namespace moert::tok {

using nlohmann::json;

namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

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
  struct Tag {
    char kind;                                                // '{' expression, '%' block, '#' comment
    bool strip_before, strip_after, keep_before, keep_after;  // '-' strips, '+' turns lstrip/trim_blocks off
    std::string body;
  };
  std::vector<std::string> texts(1);  // texts[i] precedes tags[i]
  std::vector<Tag> tags;
  size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '{' && i + 1 < t.size() && (t[i + 1] == '{' || t[i + 1] == '%' || t[i + 1] == '#')) {
      const char kind = t[i + 1];
      const char close = kind == '{' ? '}' : kind;
      Tag tag{kind, false, false, false, false, {}};
      size_t j = i + 2;
      if (j < t.size() && (t[j] == '-' || t[j] == '+')) {
        tag.strip_before = t[j] == '-';
        tag.keep_before = t[j] == '+';
        ++j;
      }
      char quote = 0;
      std::string body;
      for (; j < t.size(); ++j) {
        const char c = t[j];
        if (quote) {
          body += c == '"' && quote == '"' ? '\'' : c;
          if (c == quote) quote = 0;
          continue;
        }
        if (kind != '#' && (c == '\'' || c == '"')) {
          quote = c;
          body += '\'';
          continue;
        }
        if (c == close && j + 1 < t.size() && t[j + 1] == '}') break;
        if ((c == '-' || c == '+') && j + 2 < t.size() && t[j + 1] == close && t[j + 2] == '}') {
          tag.strip_after = c == '-';
          tag.keep_after = c == '+';
          ++j;
          break;
        }
        if (!is_ws(c)) body += c;
      }
      if (j >= t.size()) return t;  // unterminated tag: no canonical form (compares unequal)
      tag.body = std::move(body);
      tags.push_back(std::move(tag));
      texts.emplace_back();
      i = j + 2;
    } else {
      texts.back() += t[i++];
    }
  }
  // What jinja renders of each text run, cut from the raw run: a tag's '-' strips the whitespace beside it;
  // HF's trim_blocks drops the newline after a block or comment tag, lstrip_blocks the spaces and tabs
  // from a line start to one ('+' turns either off).
  for (size_t k = 0; k < texts.size(); ++k) {
    const std::string& raw = texts[k];
    size_t b = 0, e = raw.size();
    if (k > 0) {  // after tag k - 1
      const Tag& prev = tags[k - 1];
      if (prev.strip_after) {
        while (b < e && is_ws(raw[b])) ++b;
      } else if (prev.kind != '{' && !prev.keep_after && b < e && raw[b] == '\n') {
        ++b;
      }
    }
    if (k < tags.size()) {  // before tag k
      const Tag& next = tags[k];
      if (next.strip_before) {
        while (e > b && is_ws(raw[e - 1])) --e;
      } else if (next.kind != '{' && !next.keep_before) {
        size_t l = raw.size();
        while (l > 0 && (raw[l - 1] == ' ' || raw[l - 1] == '\t')) --l;
        if ((l == 0 && k == 0) || (l > 0 && raw[l - 1] == '\n')) e = std::min(e, l);
      }
    }
    texts[k] = b < e ? raw.substr(b, e - b) : std::string();
  }
  std::string out = texts[0];
  for (size_t k = 0; k < tags.size(); ++k) {
    if (tags[k].kind != '#') {
      out += tags[k].kind == '{' ? "{{" : "{%";
      out += tags[k].body;
      out += tags[k].kind == '{' ? "}}" : "%}";
    }
    out += texts[k + 1];
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
