// DeepSeek (V2/V3/R1) byte-level BPE tokenizer, loaded from a Hugging Face tokenizer.json (+ the optional
// tokenizer_config.json), matching the Hugging Face `tokenizers` library token for token.
//
// Pipeline of encode(), as `tokenizers` runs it:
//   1. added tokens: tokens with normalized=false (all special tokens of DeepSeek) are matched first on the
//      raw text (leftmost-longest, honouring single_word / lstrip / rstrip); with parse_special=false the
//      *special* ones are not matched (HF's encode_special_tokens / transformers' split_special_tokens), so
//      their text is tokenized as plain text, while non-special added tokens are still matched;
//   2. the normalizer (Sequence, Replace, Prepend, Strip) on each remaining piece, then the added tokens
//      with normalized=true are matched in the normalized pieces;
//   3. the pre-tokenizer (Sequence of Split / Digits / ByteLevel; Split regexes run by PCRE2 with JIT in
//      UTF + UCP mode, translated from Oniguruma syntax where the two differ, e.g. `\s`);
//   4. byte-level BPE by merge rank (as HF's Word::merge_all), with a bounded, thread-safe word cache.
// decode() is HF's ByteLevel decoder: the bytes of every token concatenated, then converted to UTF-8 the way
// Rust's String::from_utf8_lossy does (each maximal invalid subsequence becomes U+FFFD).
//
// Invalid UTF-8 input: encode() never fails on it. Each maximal invalid byte subsequence is replaced by
// U+FFFD (exactly as Rust's String::from_utf8_lossy, i.e. what a Python caller gets from
// bytes.decode("utf-8", "replace")) before encoding; HF's API only accepts valid strings, so this is the
// behaviour of HF on the repaired string. decode(encode(s)) == s holds for every valid UTF-8 s.
//
// Component types that the file declares and this implementation does not know (a normalizer such as NFKC,
// a pre-tokenizer such as Metaspace, a model other than BPE, a decoder other than ByteLevel) make load()
// throw Error(kUnsupported) naming the type.
//
// Known limits: character classes (\p{L}, \p{N}, ...) follow the Unicode tables of the PCRE2 linked in
// (10.42: Unicode 14), HF's follow Oniguruma's, so code points assigned after Unicode 14 may split
// differently. BPE unk_token, dropout, continuing_subword_prefix/end_of_word_suffix are rejected (DeepSeek
// uses none). The post-processor is not run: BOS comes from add_bos (TemplateProcessing is accepted and
// ignored).
//
// tiktoken (Moonlight, Kimi-K2 as released: tiktoken.model + tokenizer_config.json naming Moonshot's
// TikTokenTokenizer in its auto_map): from_tiktoken() builds the same pipeline the way that class drives
// tiktoken: the ranks as a byte-level BPE whose every pair merges at the rank of the token it makes (lowest
// first, leftmost on ties, a piece that is a token taken whole: tiktoken's byte_pair_merge), the class's
// pattern as the one Split, the 256 ids after the ranks special (named by added_tokens_decoder, else
// <|reserved_token_ID|>) and matched in text like added tokens, and the class's slicing of long texts and
// runs (split_tiktoken_chunks). decode() concatenates the tokens' bytes.
//
// Threading: a Tokenizer is immutable after load(); all const methods may be called concurrently.
// A StreamDecoder is used by one thread at a time.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moert {

namespace tok {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Loads tokenizer.json, or tiktoken.model (a file that does not start with '{' is read as tiktoken's
  // format); tokenizer_config_path may be empty for tokenizer.json (then: no BOS/EOS, add_bos default
  // false, no chat template), not for tiktoken.model. Throws Error(kIo / kFormat / kUnsupported).
  static Tokenizer load(const std::string& tokenizer_path, const std::string& tokenizer_config_path);
  // The same from in-memory JSON text (config_json may be empty).
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json);
  // The same from tiktoken.model's text and tokenizer_config.json's (required: its auto_map names the
  // tokenizer class, whose pattern and special tokens these are).
  static Tokenizer from_tiktoken(std::string_view model_text, std::string_view config_json);
  // The tokenizer file of a checkpoint directory: tokenizer.json, else tiktoken.model; empty when neither.
  static std::string find_in_dir(const std::string& dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_bos: prepend bos_id() (ignored when there is none). parse_special: match special tokens written
  // in the text (true) or tokenize their text as ordinary text (false).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // add_bos from tokenizer_config.json's add_bos_token, parse_special = true.
  std::vector<int32_t> encode(std::string_view text) const;

  // Ids that are not in the vocabulary are skipped (as HF does). skip_special drops special added tokens.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const;

  // The raw bytes a token contributes to decoded text (before UTF-8 repair); empty for unknown ids.
  std::string_view token_bytes(int32_t id) const;
  // The token's string as tokenizer.json spells it (byte-level alphabet for BPE tokens), or nullopt.
  std::optional<std::string> id_to_token(int32_t id) const;
  // Added tokens first, then the BPE vocabulary (as HF's token_to_id); nullopt when absent.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  int32_t bos_id() const;  // -1 when there is none
  int32_t eos_id() const;  // -1 when there is none
  bool add_bos_default() const;
  // One past the largest id (BPE vocabulary and added tokens).
  int32_t vocab_size() const;

  // Renders a conversation with the chat template of tokenizer_config.json. messages_json: a JSON array of
  // messages ({"role": "system"|"user"|"assistant"|"tool", "content": ..., "tool_calls": [...]}) or an
  // object with such a "messages" array (its other members are further template variables, e.g. "tools").
  // The DeepSeek-V3 template and its R1 variants (recognised exactly; R1 keeps only the text after the last
  // `</think>` of earlier assistant turns and ends the generation prompt with "<think>\n", see
  // chat_template.h) and Moonlight's are rendered natively; any other template by moert's jinja engine
  // (jinja.h), as transformers renders it.
  // Throws Error(kUnsupported) when there is no template or it uses what the engine lacks (the message says
  // what and where), Error(kInvalidArgument) for bad JSON and for messages the template fails on (for the
  // native ones: missing/non-string content, malformed tool calls; for jinja: where the template raises).
  std::string apply_chat_template(const std::string& messages_json, bool add_generation_prompt) const;

  const tok::TokenizerImpl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::unique_ptr<tok::TokenizerImpl> impl);
  // The loaders' bodies; the public ones turn a JSON library exception into Error(kFormat).
  static Tokenizer from_json_checked(std::string_view tokenizer_json, std::string_view config_json);
  static Tokenizer from_tiktoken_checked(std::string_view model_text, std::string_view config_json);
  std::unique_ptr<tok::TokenizerImpl> impl_;
};

// Incremental detokenizer: push() tokens one at a time and get back only complete UTF-8 text. An incomplete
// UTF-8 tail is held back until the bytes that complete it arrive; a sequence that can no longer become valid
// is emitted as U+FFFD exactly where decode() would put it. The concatenation of every push() result and
// finish() equals tokenizer.decode(all ids, skip_special).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  // Text completed by this token (possibly empty).
  std::string push(int32_t id);
  // Flushes a held-back incomplete tail (as U+FFFD, as decode() would) and resets.
  std::string finish();
  void reset() { pending_.clear(); }
  // Bytes held back waiting for the rest of a UTF-8 sequence.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace moert
