#include "serve_request.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "serve_api_error.h"

namespace serve {
namespace {

using json = nlohmann::json;

// A field that is absent or null is unset (clients send null for "default").
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& body, const char* key, double lo, double hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad_field(key, "must be a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_field(key, "must be between " + json(lo).dump() + " and " + json(hi).dump());
  return x;
}

std::optional<int64_t> integer(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (d != std::floor(d) || std::fabs(d) > 9e15) bad_field(key, "must be an integer");
    return static_cast<int64_t>(d);
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    bad_field(key, "is out of range");
  if (!v->is_number_integer()) bad_field(key, "must be an integer");
  return v->get<int64_t>();
}

bool boolean(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return false;
  if (!v->is_boolean()) bad_field(key, "must be a boolean");
  return v->get<bool>();
}

// Content as a string, or a list of text parts joined with newlines.
std::string content_text(const json& c, const std::string& where) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad_field(where, "must be a string or a list of content parts");
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const json& p = c[i];
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
      bad_field(at, "must be an object with a string 'type'");
    if (p["type"] != "text")
      bad_field(at + ".type", "'" + p["type"].get<std::string>() + "' is not supported (only 'text')");
    if (!p.contains("text") || !p["text"].is_string()) bad_field(at + ".text", "must be a string");
    if (i) out += "\n";
    out += p["text"].get<std::string>();
  }
  return out;
}

// An assistant message's tool_calls, as the chat templates read them (arguments as JSON text).
json tool_calls_of(const json& calls, const std::string& at) {
  if (!calls.is_array() || calls.empty()) bad_field(at, "must be a non-empty array");
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string ai = at + "[" + std::to_string(i) + "]";
    const json& c = calls[i];
    if (!c.is_object()) bad_field(ai, "must be an object");
    if (c.contains("type") && c["type"] != "function") bad_field(ai + ".type", "must be 'function'");
    const json* f = field(c, "function");
    if (!f || !f->is_object()) bad_field(ai + ".function", "must be an object");
    const json* name = field(*f, "name");
    if (!name || !name->is_string() || name->get<std::string>().empty())
      bad_field(ai + ".function.name", "must be a non-empty string");
    const json* args = field(*f, "arguments");
    std::string a = "{}";
    if (args && args->is_string())
      a = args->get<std::string>();
    else if (args && args->is_object())
      a = args->dump();
    else if (args)
      bad_field(ai + ".function.arguments", "must be a string of JSON (or an object)");
    json call = {{"type", "function"}, {"function", {{"name", *name}, {"arguments", a}}}};
    if (const json* id = field(c, "id"); id && id->is_string()) call["id"] = *id;
    out.push_back(std::move(call));
  }
  return out;
}

// The request's tools, checked: [{"type": "function", "function": {"name", "description"?, "parameters"?}}].
json tools_of(const json& tools) {
  if (!tools.is_array()) bad_field("tools", "must be an array");
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string at = "tools[" + std::to_string(i) + "]";
    const json& t = tools[i];
    const json* type = t.is_object() ? field(t, "type") : nullptr;
    if (!type || *type != "function") bad_field(at + ".type", "must be 'function'");
    const json* f = field(t, "function");
    if (!f || !f->is_object()) bad_field(at + ".function", "must be an object");
    const json* name = field(*f, "name");
    if (!name || !name->is_string() || name->get<std::string>().empty())
      bad_field(at + ".function.name", "must be a non-empty string");
    if (const json* d = field(*f, "description"); d && !d->is_string())
      bad_field(at + ".function.description", "must be a string");
    if (const json* p = field(*f, "parameters"); p && !p->is_object())
      bad_field(at + ".function.parameters", "must be an object (a JSON Schema)");
  }
  return tools;
}

// The request's tools: given to the template when there are any (with tool_choice "none" too, as OpenAI
// and vLLM keep them in the prompt), and the reply read for calls with tool_choice "auto" (the default).
// moert does not constrain decoding, so "required" and a named function are refused.
void read_tools(const json& body, const ServedModel& model, GenRequest* r) {
  const json* tools = field(body, "tools");
  std::string choice = "auto";
  if (const json* c = field(body, "tool_choice")) {
    if (!c->is_string() || (*c != "auto" && *c != "none"))
      bad_field("tool_choice",
                "only 'auto' and 'none' are supported (moert does not constrain decoding to a tool call)");
    choice = c->get<std::string>();
  }
  if (const json* p = field(body, "parallel_tool_calls")) {
    if (!p->is_boolean()) bad_field("parallel_tool_calls", "must be a boolean");
    r->parallel_tool_calls = p->get<bool>();
  }
  if (!tools) return;
  tools_of(*tools);
  r->render_tools = !tools->empty();
  r->tools = r->render_tools && choice == "auto";
  if (r->tools && !model.tool_markers())
    bad_field("tools",
              "this model's vocabulary has no tool-call tokens moert can read (DeepSeek's or Kimi-K2's)");
}

// For a chat template that ignores `tools` (DeepSeek-V3's and R1's own): the tools and the call syntax
// as a system prompt block, in the layout DeepSeek-V3.1's template gives them.
std::string tools_system_block(const json& tools, const ToolMarkers& m) {
  std::string s = "## Tools\nYou have access to the following tools:\n";
  for (const json& t : tools) {
    const json& f = t["function"];
    s += "\n### " + f["name"].get<std::string>() + "\n";
    if (const json* d = field(f, "description")) s += "Description: " + d->get<std::string>() + "\n";
    if (const json* p = field(f, "parameters")) s += "\nParameters: " + p->dump() + "\n";
  }
  s += "\nIMPORTANT: to call tools, answer with\n" + m.section_begin + m.call_begin +
       (m.kimi ? "functions.TOOL_NAME:0" + m.sep + "ARGUMENTS_JSON"
               : "function" + m.sep + "TOOL_NAME\n```json\nARGUMENTS_JSON\n```") +
       m.call_end + "..." + m.section_end + "\nand nothing else; otherwise answer the user directly.";
  return s;
}

std::string chat_prompt(const json& body, const ServedModel& model, bool tools) {
  const json* tool_list = tools ? field(body, "tools") : nullptr;
  const json* m = field(body, "messages");
  if (!m) bad_field("messages", "is required");
  if (!m->is_array() || m->empty()) bad_field("messages", "must be a non-empty array");
  if (!model.has_chat_template()) bad_field("messages", "the model has no chat template moert can render");
  json out = json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    const json& msg = (*m)[i];
    if (!msg.is_object()) bad_field(at, "must be an object");
    if (!msg.contains("role") || !msg["role"].is_string()) bad_field(at + ".role", "must be a string");
    const std::string role = msg["role"];
    if (role == "developer") {  // OpenAI's newer name for the system role
    } else if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      bad_field(at + ".role", "'" + role + "' is not supported (system, developer, user, assistant or tool)");
    }
    const json* c = field(msg, "content");
    const json* calls = role == "assistant" ? field(msg, "tool_calls") : nullptr;
    if (calls && calls->is_array() && calls->empty()) calls = nullptr;  // vLLM's responses carry []
    if (calls) {
      // DeepSeek's templates write the calls of an assistant message whose content is none.
      json a = {{"role", "assistant"}, {"tool_calls", tool_calls_of(*calls, at + ".tool_calls")}};
      const std::string text = c ? content_text(*c, at + ".content") : "";
      a["content"] = text.empty() ? json(nullptr) : json(text);
      out.push_back(std::move(a));
      continue;
    }
    if (!c) bad_field(at + ".content", "is required");
    json one = {{"role", role == "developer" ? "system" : role},
                {"content", content_text(*c, at + ".content")}};
    if (role == "tool")
      if (const json* id = field(msg, "tool_call_id"); id && id->is_string()) one["tool_call_id"] = *id;
    out.push_back(std::move(one));
  }
  if (!tool_list) return model.render_chat(out.dump());
  if (!model.template_renders_tools() && model.tool_markers()) {
    // Put the tools in the system prompt the template does render.
    const std::string block = tools_system_block(*tool_list, *model.tool_markers());
    if (!out.empty() && out[0]["role"] == "system")
      out[0]["content"] = out[0]["content"].get<std::string>() + "\n\n" + block;
    else
      out.insert(out.begin(), json{{"role", "system"}, {"content", block}});
  }
  return model.render_chat(json{{"messages", std::move(out)}, {"tools", *tool_list}}.dump());
}

std::vector<int32_t> token_list(const json& a, const ServedModel& model, const std::string& where) {
  std::vector<int32_t> ids;
  for (const json& t : a) {
    if (!t.is_number_integer() || !model.valid_token(t.get<int64_t>()))
      bad_field(where, "token ids must be integers in the vocabulary");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

// A string, a list of one string, a list of token ids, or a list of one list of token ids.
std::vector<int32_t> completion_prompt(const json& body, const ServedModel& model) {
  const json* p = field(body, "prompt");
  if (!p) bad_field("prompt", "is required");
  if (p->is_string()) return model.tokenize(p->get<std::string>(), true, "prompt");
  if (!p->is_array() || p->empty()) bad_field("prompt", "must be a string, a list of strings or token ids");
  if ((*p)[0].is_number()) return token_list(*p, model, "prompt");
  if (p->size() != 1) bad_field("prompt", "only one prompt per request is supported");
  const json& one = (*p)[0];
  if (one.is_string()) return model.tokenize(one.get<std::string>(), true, "prompt");
  if (one.is_array() && !one.empty()) return token_list(one, model, "prompt");
  bad_field("prompt", "must be a string, a list of strings or token ids");
}

// Fields moert does not implement: accepted at their no-op value, a clear 400 otherwise.
void reject_unsupported(const json& body) {
  if (const json* v = field(body, "echo");
      v && !(v->is_boolean() && !v->get<bool>()) && !(v->is_number() && *v == 0))
    bad_field("echo", "is not supported");
  for (const char* key : {"suffix", "functions", "function_call"})
    if (const json* v = field(body, key);
        v && !(v->is_array() && v->empty()) && !(v->is_string() && *v == "none"))
      bad_field(key, "is not supported");
  if (const json* v = field(body, "response_format");
      v && !(v->is_object() && v->value("type", "") == "text"))
    bad_field("response_format", "only {\"type\": \"text\"} is supported");
  if (auto best = integer(body, "best_of"); best && *best != 1) bad_field("best_of", "only 1 is supported");
}

// The logprobs asked for (-1: none). Chat: "logprobs" true, and "top_logprobs" 0-20 alternatives (only with
// it, as OpenAI requires); completions: "logprobs" 0-20 (the legacy API's integer; OpenAI allows 5).
int32_t logprobs_field(const json& body, bool chat) {
  const std::optional<int64_t> top = integer(body, "top_logprobs");
  if (top && (*top < 0 || *top > 20)) bad_field("top_logprobs", "must be between 0 and 20");
  if (chat) {
    const bool on = boolean(body, "logprobs");
    if (top && *top > 0 && !on) bad_field("top_logprobs", "requires logprobs to be true");
    return on ? static_cast<int32_t>(top.value_or(0)) : -1;
  }
  if (top) bad_field("top_logprobs", "is a chat field; completions take logprobs: N");
  const json* v = field(body, "logprobs");
  if (!v || (v->is_boolean() && !v->get<bool>())) return -1;
  if (v->is_boolean()) bad_field("logprobs", "completions take an integer: the alternatives per token, 0-20");
  const std::optional<int64_t> n = integer(body, "logprobs");
  if (*n < 0 || *n > 20) bad_field("logprobs", "must be between 0 and 20");
  return static_cast<int32_t>(*n);
}

}  // namespace

GenRequest parse_request(const std::string& text, bool chat, const ServedModel& model) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) throw ApiError(400, "the body must be a JSON object");
  GenRequest r;
  r.chat = chat;
  const json* m = field(body, "model");
  if (!m) bad_field("model", "is required");
  if (!m->is_string()) bad_field("model", "must be a string");
  if (*m != model.id())
    throw ApiError(
        404,
        "The model '" + m->get<std::string>() + "' does not exist (this server serves '" + model.id() + "')",
        "model", "model_not_found");
  if (auto n = integer(body, "n")) {
    if (*n < 1 || *n > 16) bad_field("n", "must be between 1 and 16");
    r.n = *n;
  }
  reject_unsupported(body);
  r.stream = boolean(body, "stream");
  if (const json* so = field(body, "stream_options")) {
    if (!r.stream) bad_field("stream_options", "is only allowed when stream is true");
    if (!so->is_object()) bad_field("stream_options", "must be an object");
    r.include_usage = boolean(*so, "include_usage");
  }
  r.temperature = number(body, "temperature", 0, 2);
  r.top_p = number(body, "top_p", 0, 1);
  r.min_p = number(body, "min_p", 0, 1);
  r.presence_penalty = number(body, "presence_penalty", -2, 2);
  r.frequency_penalty = number(body, "frequency_penalty", -2, 2);
  r.repetition_penalty = number(body, "repetition_penalty", 0, 10);  // an extension (llama-server, vLLM)
  r.top_k = integer(body, "top_k");
  if (r.top_k && *r.top_k < 0) bad_field("top_k", "must be 0 (off) or positive");
  r.seed = integer(body, "seed");
  r.ignore_eos = boolean(body, "ignore_eos");  // an extension (llama-server, vLLM)
  r.logprobs = logprobs_field(body, chat);
  r.token_ids = boolean(body, "return_tokens_as_token_ids");  // an extension (vLLM)
  if (const json* lb = field(body, "logit_bias")) {           // {"TOKEN_ID": bias}
    if (!lb->is_object()) bad_field("logit_bias", "must be an object of token ids to biases");
    for (const auto& [k, v] : lb->items()) {
      int64_t t = -1;  // plain decimal digits: "065" or "+65" would name a token twice
      const auto [end, ec] = std::from_chars(k.data(), k.data() + k.size(), t);
      if (k.empty() || k[0] < '0' || k[0] > '9' || (k.size() > 1 && k[0] == '0') || ec != std::errc() ||
          end != k.data() + k.size() || !model.valid_token(t))
        bad_field("logit_bias", "'" + k + "' is not a token id of this model");
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < -100 ||
          v.get<double>() > 100)
        bad_field("logit_bias", "the bias of token " + k + " must be a number from -100 to 100");
      r.logit_bias.emplace_back(static_cast<int32_t>(t), v.get<double>());
    }
  }
  if (const json* s = field(body, "stop")) {
    if (s->is_string()) {
      r.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > 16) bad_field("stop", "at most 16 stop strings");
      for (const json& x : *s) {
        if (!x.is_string()) bad_field("stop", "must be a string or a list of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad_field("stop", "must be a string or a list of strings");
    }
    for (const std::string& x : r.stop)
      if (x.empty()) bad_field("stop", "stop strings must not be empty");
  }
  if (!chat) {
    if (const json* t = field(body, "tools"); t && !(t->is_array() && t->empty()))
      bad_field("tools", "is a chat field");
    if (const json* t = field(body, "tool_choice"); t && *t != "none")
      bad_field("tool_choice", "is a chat field");
  }
  if (chat) read_tools(body, model, &r);
  r.prompt = chat ? model.tokenize(chat_prompt(body, model, r.render_tools), false, "messages")
                  : completion_prompt(body, model);
  if (r.prompt.empty()) bad_field(chat ? "messages" : "prompt", "is empty");
  const int64_t plen = static_cast<int64_t>(r.prompt.size());
  const int64_t room = std::min(model.context_length(), model.kv_capacity_tokens()) - plen;
  if (room < 1)
    bad_field(chat ? "messages" : "prompt", "the prompt has " + std::to_string(plen) +
                                                " tokens; this server takes at most " +
                                                std::to_string(plen + room - 1));
  const char* mt_key = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const std::optional<int64_t> mt = integer(body, mt_key);
  if (mt && *mt < 1) bad_field(mt_key, "must be at least 1");
  if (mt && *mt > room)
    bad_field(mt_key, std::to_string(*mt) + " tokens do not fit: the prompt has " + std::to_string(plen) +
                          " tokens and the context (and KV budget) " + std::to_string(plen + room) +
                          ", so at most " + std::to_string(room) + " can be generated");
  // Unset: as many as fit, as OpenAI does, within moert's limits.
  r.max_tokens = mt ? *mt : std::min<int64_t>(room, 4096);
  return r;
}

moert_options* generation_options(const GenRequest& r) {
  moert_options* o = nullptr;
  if (moert_options_create(&o) != MOERT_OK) throw ApiError(503, "out of memory");
  auto check = [&](moert_status st, const char* param) {
    if (st == MOERT_OK) return;
    const std::string msg = moert_last_error();
    moert_options_free(o);
    bad_field(param, msg);
  };
  check(moert_options_set_int(o, "max_tokens", r.max_tokens), "max_tokens");
  const std::pair<const char*, const std::optional<double>*> nums[] = {
      {"temperature", &r.temperature},
      {"top_p", &r.top_p},
      {"min_p", &r.min_p},
      {"presence_penalty", &r.presence_penalty},
      {"frequency_penalty", &r.frequency_penalty},
      {"repetition_penalty", &r.repetition_penalty}};
  for (auto [key, v] : nums)
    if (*v) check(moert_options_set_float(o, key, **v), key);
  if (r.top_k) check(moert_options_set_int(o, "top_k", *r.top_k), "top_k");
  if (r.seed) check(moert_options_set_int(o, "seed", *r.seed), "seed");
  for (const std::string& s : r.stop) check(moert_options_add_string(o, "stop", s.c_str()), "stop");
  if (r.ignore_eos) check(moert_options_set_int(o, "ignore_eos", 1), "ignore_eos");
  if (r.logprobs >= 0) check(moert_options_set_int(o, "logprobs", r.logprobs), "logprobs");
  for (const auto& [t, b] : r.logit_bias) {
    char entry[64];
    auto [p, ec] = std::to_chars(entry, entry + 32, t);
    *p++ = ':';
    p = std::to_chars(p, entry + sizeof entry - 1, b).ptr;  // locale-free, shortest round trip
    *p = 0;
    check(moert_options_add_string(o, "logit_bias", entry), "logit_bias");
  }
  return o;
}

}  // namespace serve
