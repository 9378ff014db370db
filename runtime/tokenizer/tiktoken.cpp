// Tokenizer::from_tiktoken: Moonshot's tiktoken tokenizers (Moonlight, Kimi-K2), as their
// tokenization_moonshot.py / tokenization_kimi.py build them: tiktoken.model's ranks (one "base64 rank" per
// line), the class's pre-tokenizer pattern, special tokens at the ids after the ranks (names from
// tokenizer_config.json's added_tokens_decoder, else <|reserved_token_ID|>), encode with every special token
// allowed, and the class's chunking of long texts and runs.
#include <map>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace moert {

using nlohmann::json;
using namespace tok;

namespace {

// TikTokenTokenizer.pat_str (tokenization_kimi.py, the same in tokenization_moonshot.py), as tiktoken's
// Rust regex reads it: \p{Han} is the Han script; [A&&[^B]] the class intersection.
constexpr const char* kMoonshotPattern =
    R"([\p{Han}]+)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+)"
    R"(|\s+(?!\S))"
    R"(|\s+)";

// TikTokenTokenizer.num_reserved_special_tokens: the ids after the ranks that are special tokens.
constexpr int32_t kReservedSpecial = 256;
// How far past the ranks added_tokens_decoder may name an id (bounds the tables built from the ids).
constexpr int64_t kMaxSpecial = 65536;
// Longer tokens are refused: building the merges looks at every split of every token.
constexpr size_t kMaxTokenBytes = 4096;

int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding (what base64.b64encode writes); false when s is not that.
bool b64_decode(std::string_view s, std::string* out) {
  out->clear();
  if (s.empty() || s.size() % 4 != 0) return false;
  for (size_t i = 0; i < s.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(s[i + k]);
      if (c == '=' && i + 4 == s.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;  // data after padding
        v[k] = b64_value(c);
        if (v[k] < 0) return false;
      }
    }
    const uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out->push_back(static_cast<char>(w >> 16));
    if (pad < 2) out->push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out->push_back(static_cast<char>(w & 0xFF));
  }
  return true;
}

std::vector<std::pair<std::string, int32_t>> parse_ranks(std::string_view text) {
  std::vector<std::pair<std::string, int32_t>> ranks;
  size_t pos = 0, line_no = 0;
  std::string bytes;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    if (line.empty()) continue;  // load_tiktoken_bpe skips blank lines
    auto bad = [&](const std::string& why) {
      fail(ErrorCode::kFormat, "tiktoken.model line " + std::to_string(line_no) + ": " + why);
    };
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      bad("expected \"<base64 token> <rank>\"");
    if (!b64_decode(line.substr(0, sp), &bytes)) bad("the token is not base64");
    if (bytes.size() > kMaxTokenBytes)
      bad("a token of " + std::to_string(bytes.size()) + " bytes (the limit is 4096)");
    const std::string_view r = line.substr(sp + 1);
    int64_t rank = 0;
    if (r.empty() || r.size() > 9) bad("bad rank '" + std::string(r) + "'");
    for (char c : r) {
      if (c < '0' || c > '9') bad("bad rank '" + std::string(r) + "'");
      rank = rank * 10 + (c - '0');
    }
    ranks.emplace_back(bytes, static_cast<int32_t>(rank));
  }
  if (ranks.empty()) fail(ErrorCode::kFormat, "tiktoken.model: no tokens");
  return ranks;
}

// The tokenizer class tokenizer_config.json's auto_map names, e.g. "tokenization_kimi.TikTokenTokenizer".
std::string auto_tokenizer_class(const json& c) {
  if (!c.contains("auto_map") || !c["auto_map"].is_object()) return {};
  const json& m = c["auto_map"];
  if (!m.contains("AutoTokenizer")) return {};
  const json& a = m["AutoTokenizer"];
  std::string cls;
  if (a.is_string()) cls = a.get<std::string>();
  if (a.is_array() && !a.empty() && a[0].is_string()) cls = a[0].get<std::string>();
  // save_pretrained of a Hub tokenizer writes "<repo>--module.Class".
  const size_t dash = cls.rfind("--");
  return dash == std::string::npos ? cls : cls.substr(dash + 2);
}

}  // namespace

namespace tok {

void split_tiktoken_chunks(std::string_view text, size_t max_chars, size_t max_run,
                           std::vector<std::string_view>* out) {
  // TikTokenTokenizer.encode: slices of max_chars characters, each split so that no piece holds more than
  // max_run consecutive whitespace or non-whitespace characters (_split_whitespaces_or_nonwhitespaces).
  size_t piece = 0, chars = 0, run = 0;  // the open piece's start, characters into the slice, run length
  bool run_space = false;
  for (size_t j = 0; j < text.size();) {
    const size_t at = j;
    const bool space = py_isspace(utf8_decode(text, &j));
    if (chars == max_chars) {  // a new slice: the open piece ends with the old one
      out->push_back(text.substr(piece, at - piece));
      piece = at;
      chars = 0;
    }
    if (chars++ == 0 || space != run_space) {
      run = 1;
      run_space = space;
    } else if (++run > max_run) {
      out->push_back(text.substr(piece, at - piece));
      piece = at;
      run = 1;
    }
  }
  if (piece < text.size()) out->push_back(text.substr(piece));
}

}  // namespace tok

Tokenizer Tokenizer::from_tiktoken_checked(std::string_view model_text, std::string_view config_json) {
  const json c = parse_tokenizer_config(config_json);
  if (c.is_null())
    fail(ErrorCode::kUnsupported,
         "tiktoken.model: needs tokenizer_config.json, whose auto_map names the tokenizer class (its "
         "pre-tokenizer pattern lives in that class; moert knows Moonshot's TikTokenTokenizer)");
  const std::string cls = auto_tokenizer_class(c);
  if (cls != "tokenization_kimi.TikTokenTokenizer" && cls != "tokenization_moonshot.TikTokenTokenizer")
    fail(ErrorCode::kUnsupported,
         "tiktoken.model: unknown tokenizer class '" + cls +
             "' in tokenizer_config.json's auto_map (moert knows tokenization_kimi.TikTokenTokenizer and "
             "tokenization_moonshot.TikTokenTokenizer: Kimi-K2, Moonlight)");

  auto impl = std::make_unique<TokenizerImpl>();
  const auto ranks = parse_ranks(model_text);
  const auto num_base = static_cast<int64_t>(ranks.size());
  // Special tokens take the ids from len(ranks) on, so the ranks must be 0 .. len - 1 (no duplicates, which
  // the BPE model rejects, and none past the count).
  for (const auto& r : ranks)
    if (r.second >= num_base)
      fail(ErrorCode::kFormat, "tiktoken.model: rank " + std::to_string(r.second) + " leaves a gap (" +
                                   std::to_string(num_base) + " tokens must have the ranks 0 .. " +
                                   std::to_string(num_base - 1) + ")");
  impl->bpe = std::make_unique<BpeModel>(ranks);
  impl->ignore_merges = true;  // tiktoken takes a piece that is a token whole, before any merge
  impl->tiktoken_chunks = true;
  impl->normalizer = std::make_unique<Normalizer>(json());
  // As transformers' TikTokenConverter writes it: the pattern's Split, then ByteLevel without its regex.
  impl->pretokenizer = std::make_unique<PreTokenizer>(
      json{{"type", "Sequence"},
           {"pretokenizers",
            json::array({json{{"type", "Split"},
                              {"pattern", {{"Regex", kMoonshotPattern}}},
                              {"behavior", "Isolated"},
                              {"invert", false}},
                         json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}});

  // Special tokens: ids num_base .. num_base + 256, named by added_tokens_decoder where it has them, and any
  // other id it lists.
  std::map<int64_t, AddedToken> specials;
  for (int64_t id = num_base; id < num_base + kReservedSpecial; ++id)
    specials[id] = AddedToken{static_cast<int32_t>(id),
                              "<|reserved_token_" + std::to_string(id) + "|>",
                              true,
                              false,
                              false,
                              false,
                              false};
  if (c.contains("added_tokens_decoder")) {
    const json& d = c["added_tokens_decoder"];
    if (!d.is_object())
      fail(ErrorCode::kFormat, "tokenizer_config.json: added_tokens_decoder is not an object");
    for (const auto& [key, v] : d.items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
      }
      if (id < 0 || id > 0x7FFFFFFF || !v.is_object() || !v.contains("content") ||
          !v["content"].is_string() || v["content"].get_ref<const std::string&>().empty())
        fail(ErrorCode::kFormat, "tokenizer_config.json: bad added_tokens_decoder entry '" + key + "'");
      if (id < num_base)
        fail(ErrorCode::kFormat,
             "tokenizer_config.json: added token " + key + " has the id of a tiktoken.model rank");
      if (id >= num_base + kMaxSpecial)
        fail(ErrorCode::kFormat, "tokenizer_config.json: added token " + key + " is more than " +
                                     std::to_string(kMaxSpecial) + " ids past the ranks");
      // tiktoken matches every special token exactly (allowed_special="all"): the HF flags (lstrip, rstrip,
      // single_word, special) of the entry play no part in Moonshot's encode.
      specials[id] = AddedToken{
          static_cast<int32_t>(id), v["content"].get<std::string>(), true, false, false, false, false};
    }
  }
  for (auto& [id, t] : specials) {
    if (!impl->added_ids.emplace(t.content, t.id).second)
      fail(ErrorCode::kFormat, "tokenizer_config.json: two special tokens are '" + t.content + "'");
    impl->added.push_back(std::move(t));
  }
  impl->finish(c);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_tiktoken(std::string_view model_text, std::string_view config_json) {
  try {
    return from_tiktoken_checked(model_text, config_json);
  } catch (const json::exception& e) {  // a field of the wrong type
    fail(ErrorCode::kFormat, std::string("tokenizer_config.json: ") + e.what());
  }
}

}  // namespace moert
