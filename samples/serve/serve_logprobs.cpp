#include "serve_logprobs.h"

namespace serve {
namespace {

using json = nlohmann::json;

// Characters (code points) of UTF-8 text: the unit of the completions API's text_offset.
int64_t characters(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json utf8_bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(c);
  return b;
}

}  // namespace

std::string LogprobsCollector::text_of(int32_t id) const {
  return token_ids_ ? "token_id:" + std::to_string(id) : model_.token_text(id);
}

json LogprobsCollector::entry(int32_t id, float logprob) const {
  const std::string text = text_of(id);
  return {{"token", text}, {"logprob", logprob}, {"bytes", utf8_bytes(text)}};
}

void LogprobsCollector::add(const StreamEvent& ev) {
  if (!ev.has_logprobs || ev.token < 0) return;
  if (ev.finish == MOERT_FINISH_EOS) return;
  if (chat_) {
    json e = entry(ev.token, ev.logprob);
    json top = json::array();
    for (size_t i = 0; i < ev.top_ids.size(); ++i) top.push_back(entry(ev.top_ids[i], ev.top_logprobs[i]));
    e["top_logprobs"] = std::move(top);
    items_.push_back(std::move(e));
    return;
  }
  const std::string text = text_of(ev.token);
  tokens_.push_back(text);
  token_logprobs_.push_back(ev.logprob);
  // Keyed by text: where two ids read the same, the more likely one's value stands; the sampled token is
  // always there (up to N + 1 entries, as OpenAI's legacy API gives them).
  json top = json::object();
  for (size_t i = 0; i < ev.top_ids.size(); ++i) {
    const std::string t = text_of(ev.top_ids[i]);
    if (!top.contains(t)) top[t] = ev.top_logprobs[i];
  }
  if (!top.contains(text)) top[text] = ev.logprob;
  top_.push_back(std::move(top));
  offsets_.push_back(text_offset_);
  text_offset_ += characters(token_ids_ ? model_.token_text(ev.token) : text);  // of the real text
}

json LogprobsCollector::take() {
  json out;
  if (chat_) {
    out = {{"content", std::move(items_)}, {"refusal", nullptr}};
    items_ = json::array();
  } else {
    out = {{"tokens", std::move(tokens_)},
           {"token_logprobs", std::move(token_logprobs_)},
           {"top_logprobs", std::move(top_)},
           {"text_offset", std::move(offsets_)}};
    tokens_ = json::array(), token_logprobs_ = json::array(), top_ = json::array(), offsets_ = json::array();
  }
  return out;
}

}  // namespace serve
