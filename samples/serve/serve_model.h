// The model the server serves, through moert.h: its handle and tokenizer, the id clients name it by, its
// limits, and whether its chat template opens DeepSeek-R1's reasoning.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moert/moert.h"
#include "serve_tools.h"

namespace serve {

class ServedModel {
 public:
  // Takes ownership of model.
  ServedModel(moert_model* model, std::string id);
  ~ServedModel();
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  moert_model* handle() const { return model_; }
  const std::string& id() const { return id_; }
  int64_t context_length() const { return context_length_; }
  int64_t kv_capacity_tokens() const { return kv_capacity_; }
  bool has_chat_template() const { return has_chat_template_; }
  // The generation prompt ends inside "<think>" (an R1 template).
  bool opens_reasoning() const { return opens_reasoning_; }
  // Text to ids as moert_generate_text does (BOS as tokenizer_config.json says, special tokens parsed).
  // Throws ApiError(400, param) when the tokenizer refuses it.
  std::vector<int32_t> tokenize(const std::string& text, bool add_bos_default, const char* param) const;
  // Messages (a JSON array) through the chat template. Throws ApiError(400, "messages").
  std::string render_chat(const std::string& messages_json) const;
  bool valid_token(int64_t id) const { return id >= 0 && id < vocab_size_; }
  // One token's own text (special tokens kept; "" for an id the tokenizer lacks).
  std::string token_text(int32_t id) const;
  // Ids to text, special tokens kept ("" when the tokenizer refuses them).
  std::string detokenize(const std::vector<int32_t>& ids) const;
  // The tool-call syntax of the vocabulary (null: it has none) and its section's first token.
  const ToolMarkers* tool_markers() const { return tool_markers_; }
  // The chat template writes a request's `tools` (else the server puts them in the system prompt).
  bool template_renders_tools() const { return renders_tools_; }
  int32_t tool_section_token() const { return tool_section_token_; }

 private:
  std::optional<std::string> decode(const int32_t* ids, size_t n) const;

  moert_model* model_;
  moert_tokenizer* tok_ = nullptr;
  std::string id_;
  int64_t context_length_ = 0, kv_capacity_ = 0, vocab_size_ = 0;
  bool has_chat_template_ = false, opens_reasoning_ = false;
  const ToolMarkers* tool_markers_ = nullptr;
  bool renders_tools_ = false;
  int32_t tool_section_token_ = -1;
};

}  // namespace serve
