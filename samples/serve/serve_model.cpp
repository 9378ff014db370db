#include "serve_model.h"

#include <stdexcept>

#include "serve_api_error.h"
#include "serve_text.h"

namespace serve {
namespace {

int64_t info(moert_model* m, const char* key) {
  int64_t v = 0;
  if (moert_model_info_int(m, key, &v) != MOERT_OK) throw std::runtime_error(moert_last_error());
  return v;
}

}  // namespace

ServedModel::ServedModel(moert_model* model, std::string id) : model_(model), id_(std::move(id)) {
  context_length_ = info(model, "context_length");
  kv_capacity_ = info(model, "kv_capacity_tokens");
  vocab_size_ = info(model, "vocab_size");
  if (moert_model_tokenizer(model, &tok_) != MOERT_OK)
    throw std::runtime_error(std::string("the model has no tokenizer: ") + moert_last_error());
  try {
    const std::string probe = render_chat(R"([{"role":"user","content":"x"}])");
    has_chat_template_ = true;
    const std::string tail = "<think>\n";
    opens_reasoning_ =
        probe.size() >= tail.size() && probe.compare(probe.size() - tail.size(), tail.size(), tail) == 0;
  } catch (const ApiError&) {
    has_chat_template_ = false;  // /v1/chat/completions then answers 400
  }
  // Whether the template writes a request's tools (DeepSeek-V3's and R1's own do not).
  if (has_chat_template_) {
    try {
      renders_tools_ =
          render_chat(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",)"
                      R"("function":{"name":"moert_probe_tool","parameters":{}}}]})")
              .find("moert_probe_tool") != std::string::npos;
    } catch (const ApiError&) {
      renders_tools_ = false;  // a template that raises on tools: the system prompt carries them
    }
  }
  // The tool-call syntax whose section marker is one token of this vocabulary.
  for (const ToolMarkers* m : {&deepseek_tool_markers(), &kimi_tool_markers()}) {
    size_t n = 0;
    int32_t id = -1;
    const std::string& t = m->section_begin;
    if (moert_tokenize(tok_, t.data(), t.size(), 0, 1, &id, 1, &n) == MOERT_OK && n == 1) {
      tool_markers_ = m;
      tool_section_token_ = id;
      break;
    }
  }
}

ServedModel::~ServedModel() {
  moert_tokenizer_free(tok_);
  moert_model_free(model_);
}

std::vector<int32_t> ServedModel::tokenize(const std::string& text, bool add_bos_default,
                                           const char* param) const {
  size_t n = 0;
  const int32_t bos = add_bos_default ? -1 : 0;
  if (moert_tokenize(tok_, text.data(), text.size(), bos, 1, nullptr, 0, &n) != MOERT_OK)
    bad_field(param, moert_last_error());
  std::vector<int32_t> ids(n);
  if (moert_tokenize(tok_, text.data(), text.size(), bos, 1, ids.data(), ids.size(), &n) != MOERT_OK)
    bad_field(param, moert_last_error());
  ids.resize(n);
  return ids;
}

// Ids to text, special tokens kept (the text keeps NUL bytes: the byte token 0x00 reads as one); nullopt
// when the tokenizer refuses an id.
std::optional<std::string> ServedModel::decode(const int32_t* ids, size_t n) const {
  return read_text(
      [&](char* buf, size_t cap, size_t* need) { return moert_detokenize(tok_, ids, n, 0, buf, cap, need); });
}

std::string ServedModel::detokenize(const std::vector<int32_t>& ids) const {
  if (std::optional<std::string> s = decode(ids.data(), ids.size())) return *s;
  // An id the tokenizer lacks (a padded row of lm_head) is dropped, not the whole text.
  std::vector<int32_t> known;
  for (int32_t id : ids)
    if (decode(&id, 1)) known.push_back(id);
  return known.size() == ids.size() ? "" : detokenize(known);
}

std::string ServedModel::token_text(int32_t id) const {
  return decode(&id, 1).value_or("");
}

std::string ServedModel::render_chat(const std::string& messages_json) const {
  std::optional<std::string> out = read_text([&](char* buf, size_t cap, size_t* need) {
    return moert_apply_chat_template(tok_, messages_json.c_str(), 1, buf, cap, need);
  });
  if (!out) bad_field("messages", moert_last_error());
  return *out;
}

}  // namespace serve
