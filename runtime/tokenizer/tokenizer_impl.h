// Internals of moert::Tokenizer (shared with tests and benchmarks).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/chat_template_jinja.h"
#include "tokenizer/chat_template_moonshot.h"
#include "tokenizer/components.h"

namespace moert::tok {

struct TokenizerImpl {
  std::unique_ptr<BpeModel> bpe;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pretokenizer;
  std::vector<AddedToken> added;
  std::vector<AddedToken> added_normalized;  // normalized=true tokens, content normalized
  AddedMatcher raw_matcher;                  // normalized=false tokens, on the raw text
  AddedMatcher norm_matcher;                 // normalized=true tokens, on normalized text
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> added_ids;
  bool ignore_merges = false;
  bool tiktoken_chunks = false;  // encode in TikTokenTokenizer's chunks (split_tiktoken_chunks)

  // Per id: decoded bytes (offsets into decode_bytes), token string, flags.
  std::vector<uint32_t> decode_offsets;  // size vocab_size + 1
  std::string decode_bytes;
  std::vector<std::string> token_strings;
  std::vector<uint8_t> flags;  // bit 0: known id, bit 1: special
  int32_t vocab_size = 0;

  int32_t bos = -1, eos = -1;
  bool add_bos = false;
  std::string bos_token;
  std::string chat_template;  // empty: none
  std::optional<ChatTemplateKind> chat_kind;
  std::optional<MoonshotChat> moonshot_chat;  // when chat_kind is not set
  // Any other template, rendered by the jinja engine (with chat_variables), or why it cannot be.
  std::optional<jinja::Template> jinja_chat;
  std::string jinja_chat_error;
  nlohmann::ordered_json chat_variables;

  // Pre-tokenizes and BPE-encodes one piece of text without added tokens.
  void encode_text(std::string_view text, std::vector<int32_t>* ids) const;
  void encode(std::string_view text, bool add_bos, bool parse_special, std::vector<int32_t>* ids) const;
  // encode's work on valid UTF-8 without BOS: added tokens, normalizer, pre-tokenizer, BPE.
  void encode_valid(std::string_view text, bool parse_special, std::vector<int32_t>* ids) const;
  // After the model, components and added tokens (with their final ids) are set: the added-token
  // matchers, the decode tables, and tokenizer_config.json's BOS/EOS and chat template (config: as
  // parse_tokenizer_config gives it; null when there is none).
  void finish(const nlohmann::json& config);
};

// tokenizer_config.json's text as a JSON object; null for empty text. Error(kFormat) for text that is not
// JSON or not an object.
nlohmann::json parse_tokenizer_config(std::string_view text);

// Moonshot's TikTokenTokenizer.encode splits a text before tiktoken sees it: slices of max_chars (400,000)
// characters, each cut so that no piece holds more than max_run (25,000) consecutive whitespace (Python's
// str.isspace) or non-whitespace characters. Appends the pieces of text (valid UTF-8, not empty) to out.
void split_tiktoken_chunks(std::string_view text, size_t max_chars, size_t max_run,
                           std::vector<std::string_view>* out);

}  // namespace moert::tok
