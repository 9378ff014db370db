#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/file_io.h"

namespace moert {

using nlohmann::json;
using namespace tok;

namespace {

std::string read_file(const std::string& path) {
  try {
    return read_regular_file(path);  // a FIFO or directory is an error, never a hang
  } catch (const Error& e) {
    fail(e.code(), std::string("tokenizer: ") + e.what());
  }
}

json parse_json(std::string_view text, const char* what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, std::string(what) + " is not valid JSON: " + e.what());
  }
}

// "bos_token": "..." or {"content": "..."}; empty when absent/null.
std::string token_content(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return {};
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return {};
}

// A token's bytes as the ByteLevel decoder gives them: each character mapped back to its byte when all of
// them are byte-level characters, else the token's own UTF-8 bytes.
std::string byte_level_bytes(const std::string& token) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    const int b = char_to_byte(utf8_decode(token, &i));
    if (b < 0) return token;
    out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace

namespace tok {

void TokenizerImpl::encode_text(std::string_view text, std::vector<int32_t>* ids) const {
  if (text.empty()) return;
  thread_local std::string buf;
  thread_local std::vector<Span> spans;
  buf.assign(text);
  pretokenizer->split(&buf, &spans);
  const bool plain = !ignore_merges;
  for (const Span& s : spans) {
    const std::string_view word(buf.data() + s.begin, s.end - s.begin);
    if (!plain) {
      std::string mapped;
      for (unsigned char b : word) utf8_append(byte_to_char()[b], &mapped);
      auto it = bpe->vocab().find(mapped);
      if (it != bpe->vocab().end()) {
        ids->push_back(it->second);
        continue;
      }
    }
    bpe->encode_word(word, ids);
  }
}

void TokenizerImpl::encode(std::string_view text, bool with_bos, bool parse_special,
                           std::vector<int32_t>* ids) const {
  std::string repaired;
  if (!utf8_valid(text)) {
    utf8_lossy_append(text, &repaired);
    text = repaired;
  }
  if (with_bos && bos >= 0) ids->push_back(bos);
  if (!tiktoken_chunks) {
    encode_valid(text, parse_special, ids);
    return;
  }
  std::vector<std::string_view> chunks;
  split_tiktoken_chunks(text, 400000, 25000, &chunks);
  for (std::string_view ch : chunks) encode_valid(ch, parse_special, ids);
}

void TokenizerImpl::encode_valid(std::string_view text, bool parse_special, std::vector<int32_t>* ids) const {
  std::vector<Segment> segs;
  raw_matcher.split(text, !parse_special, &segs);
  std::vector<Segment> segs2;
  for (const Segment& sg : segs) {
    if (sg.id >= 0) {
      ids->push_back(sg.id);
      continue;
    }
    const std::string_view piece = text.substr(sg.begin, sg.end - sg.begin);
    if (piece.empty()) continue;
    if (normalizer->identity() && norm_matcher.empty()) {
      encode_text(piece, ids);
      continue;
    }
    const std::string normalized = normalizer->identity() ? std::string(piece) : normalizer->apply(piece);
    segs2.clear();
    norm_matcher.split(normalized, !parse_special, &segs2);
    for (const Segment& s2 : segs2) {
      if (s2.id >= 0) {
        ids->push_back(s2.id);
      } else {
        encode_text(std::string_view(normalized).substr(s2.begin, s2.end - s2.begin), ids);
      }
    }
  }
}

json parse_tokenizer_config(std::string_view text) {
  if (text.empty()) return json();
  json c = parse_json(text, "tokenizer_config.json");
  if (!c.is_object()) fail(ErrorCode::kFormat, "tokenizer_config.json: not a JSON object");
  return c;
}

void TokenizerImpl::finish(const json& config) {
  {
    std::vector<const AddedToken*> raw;
    for (const AddedToken& t : added)
      if (!t.normalized) raw.push_back(&t);
    raw_matcher.build(raw);
    for (const AddedToken& t : added) {
      if (!t.normalized) continue;
      AddedToken n = t;
      if (!normalizer->identity()) n.content = normalizer->apply(t.content);
      added_normalized.push_back(std::move(n));
    }
    std::vector<const AddedToken*> norm;
    for (const AddedToken& t : added_normalized) norm.push_back(&t);
    norm_matcher.build(norm);
  }

  // Decode tables.
  int32_t max_id = bpe->max_id();
  for (const AddedToken& t : added) max_id = std::max(max_id, t.id);
  vocab_size = max_id + 1;
  token_strings.assign(static_cast<size_t>(vocab_size), std::string());
  flags.assign(static_cast<size_t>(vocab_size), 0);
  for (const auto& [tok, id] : bpe->vocab()) {
    token_strings[id] = tok;
    flags[id] = 1;
  }
  // Added tokens take precedence (simple_id_to_token first). HF keeps a normalized token's content
  // normalized there, so id_to_token and decode give the normalized form.
  for (const AddedToken& t : added) {
    token_strings[t.id] = t.normalized && !normalizer->identity() ? normalizer->apply(t.content) : t.content;
    flags[t.id] = 1;
  }
  // Special for skip_special as HF's is_special_token: the stored token string is a special token's content
  // (so a normalized special token whose content the normalizer changes is not skipped, as in HF).
  {
    std::unordered_map<std::string, int, StringHash, std::equal_to<>> special_contents;
    for (const AddedToken& t : added)
      if (t.special) special_contents.emplace(t.content, 1);
    for (const AddedToken& t : added)
      if (special_contents.count(token_strings[t.id])) flags[t.id] |= 2;
  }
  decode_offsets.assign(static_cast<size_t>(vocab_size) + 1, 0);
  for (int32_t id = 0; id < vocab_size; ++id) {
    decode_offsets[id] = static_cast<uint32_t>(decode_bytes.size());
    if (flags[id] & 1) decode_bytes += byte_level_bytes(token_strings[id]);
  }
  decode_offsets[vocab_size] = static_cast<uint32_t>(decode_bytes.size());

  // tokenizer_config.json.
  if (!config.is_null()) {
    const json& c = config;
    add_bos = c.value("add_bos_token", false);
    bos_token = token_content(c, "bos_token");
    const std::string eos_token = token_content(c, "eos_token");
    auto find = [&](const std::string& s) -> int32_t {
      if (s.empty()) return -1;
      auto it = added_ids.find(s);
      if (it != added_ids.end()) return it->second;
      auto v = bpe->vocab().find(s);
      return v == bpe->vocab().end() ? -1 : v->second;
    };
    bos = find(bos_token);
    eos = find(eos_token);
    if (!bos_token.empty() && bos < 0)
      fail(ErrorCode::kFormat, "tokenizer_config.json: bos_token '" + bos_token + "' is not a token");
    if (!eos_token.empty() && eos < 0)
      fail(ErrorCode::kFormat, "tokenizer_config.json: eos_token '" + eos_token + "' is not a token");
    if (c.contains("chat_template")) {
      const json& ct = c["chat_template"];
      if (ct.is_string()) {
        chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const json& e : ct)
          if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template") &&
              e["template"].is_string())
            chat_template = e["template"].get<std::string>();
      }
      if (!chat_template.empty()) {
        chat_kind = recognise_chat_template(chat_template);
        if (!chat_kind) moonshot_chat = recognise_moonshot_template(chat_template);
        if (!chat_kind && !moonshot_chat) {
          // A template that does not parse still lets the tokenizer load; applying it reports why.
          try {
            jinja_chat.emplace(chat_template);
            chat_variables = chat_template_variables(c);
          } catch (const Error& e) {
            jinja_chat_error = e.what();
          }
        }
      }
    }
  }
}

}  // namespace tok

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& tokenizer_path, const std::string& tokenizer_config_path) {
  const std::string tj = read_file(tokenizer_path);
  const std::string cj = tokenizer_config_path.empty() ? std::string() : read_file(tokenizer_config_path);
  // JSON (after a UTF-8 BOM, which the JSON parser skips too) or tiktoken's lines of base64.
  const size_t bom = tj.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
  const size_t first = tj.find_first_not_of(" \t\r\n", bom);
  if (first != std::string::npos && tj[first] != '{') return from_tiktoken(tj, cj);
  return from_json(tj, cj);
}

std::string Tokenizer::find_in_dir(const std::string& dir) {
  for (const char* name : {"tokenizer.json", "tiktoken.model"})
    if (path_exists(dir + "/" + name)) return dir + "/" + name;
  return {};
}

Tokenizer Tokenizer::from_json_checked(std::string_view tokenizer_json, std::string_view config_json) {
  auto impl = std::make_unique<TokenizerImpl>();
  const json j = parse_json(tokenizer_json, "tokenizer.json");
  if (!j.is_object()) fail(ErrorCode::kFormat, "tokenizer.json: not a JSON object");

  // Model.
  if (!j.contains("model") || !j["model"].is_object()) fail(ErrorCode::kFormat, "tokenizer.json: no model");
  const json& m = j["model"];
  const std::string mtype = m.value("type", std::string("BPE"));
  if (mtype != "BPE") fail(ErrorCode::kUnsupported, "tokenizer.json: unsupported model type '" + mtype + "'");
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() > 0.0)
    fail(ErrorCode::kUnsupported, "tokenizer.json: BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty())
      fail(ErrorCode::kUnsupported, std::string("tokenizer.json: BPE ") + key + " is not supported");
  if (m.contains("unk_token") && !m["unk_token"].is_null())
    fail(ErrorCode::kUnsupported, "tokenizer.json: BPE unk_token is not supported (byte-level BPE has none)");
  impl->ignore_merges = m.value("ignore_merges", false);
  const bool byte_fallback = m.value("byte_fallback", false);
  if (!m.contains("vocab") || !m["vocab"].is_object())
    fail(ErrorCode::kFormat, "tokenizer.json: BPE has no vocab");
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab;
  vocab.reserve(m["vocab"].size());
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t{1} << 24))
      fail(ErrorCode::kFormat, "tokenizer.json: bad id for token '" + tok + "' (ids are 0 .. 16777215)");
    vocab.emplace(tok, id.get<int32_t>());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (m.contains("merges")) {
    if (!m["merges"].is_array()) fail(ErrorCode::kFormat, "tokenizer.json: merges is not an array");
    merges.reserve(m["merges"].size());
    for (const json& mg : m["merges"]) {
      if (mg.is_string()) {
        const std::string& s = mg.get_ref<const std::string&>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail(ErrorCode::kFormat, "tokenizer.json: bad merge '" + s + "'");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
      } else {
        fail(ErrorCode::kFormat, "tokenizer.json: bad merge " + mg.dump());
      }
    }
  }
  impl->bpe = std::make_unique<BpeModel>(std::move(vocab), merges, byte_fallback);

  // Normalizer, pre-tokenizer, post-processor, decoder.
  impl->normalizer = std::make_unique<Normalizer>(j.value("normalizer", json()));
  impl->pretokenizer = std::make_unique<PreTokenizer>(j.value("pre_tokenizer", json()));
  const json pp = j.value("post_processor", json());
  if (!pp.is_null()) {
    const std::string t = pp.value("type", std::string());
    // These only add special tokens (add_bos does that here) or fix offsets.
    if (t != "ByteLevel" && t != "TemplateProcessing" && t != "Sequence")
      fail(ErrorCode::kUnsupported, "tokenizer.json: unsupported post_processor type '" + t + "'");
  }
  const json dec = j.value("decoder", json());
  if (dec.is_null() || dec.value("type", std::string()) != "ByteLevel")
    fail(ErrorCode::kUnsupported,
         "tokenizer.json: unsupported decoder type '" +
             (dec.is_null() ? std::string("null") : dec.value("type", std::string())) +
             "' (ByteLevel is required)");

  // Added tokens.
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string() ||
          !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 || a["id"].get<int64_t>() > 0x7FFFFFFF)
        fail(ErrorCode::kFormat, "tokenizer.json: bad added token " + a.dump());
      AddedToken t{a["id"].get<int32_t>(),
                   a["content"].get<std::string>(),
                   a.value("special", false),
                   a.value("lstrip", false),
                   a.value("rstrip", false),
                   a.value("single_word", false),
                   a.value("normalized", !a.value("special", false))};
      impl->added.push_back(std::move(t));
    }
  }
  // Ids as HF's AddedVocabulary assigns them (the file's ids are only a hint there): tokens in id order; a
  // token already in the vocabulary (or added before) keeps that id, any other gets the next free id past
  // the BPE vocabulary.
  std::stable_sort(impl->added.begin(), impl->added.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  {
    const int64_t model_size = static_cast<int64_t>(impl->bpe->vocab().size());
    int64_t max_added = -1;
    std::vector<AddedToken> kept;
    for (AddedToken& t : impl->added) {
      if (t.content.empty()) continue;
      auto prev = impl->added_ids.find(t.content);
      int64_t id;
      if (prev != impl->added_ids.end()) {
        id = prev->second;
      } else if (auto v = impl->bpe->vocab().find(t.content); v != impl->bpe->vocab().end()) {
        id = v->second;
      } else if (max_added < 0) {
        id = model_size;
      } else {
        id = (max_added >= model_size || model_size == 0) ? max_added + 1 : model_size;
      }
      if (id >= (int64_t{1} << 24))  // the decode tables are sized by the largest id
        fail(ErrorCode::kFormat, "tokenizer.json: added token '" + t.content + "' has id " +
                                     std::to_string(id) + " (ids must be below 16777216)");
      t.id = static_cast<int32_t>(id);
      max_added = std::max(max_added, id);
      impl->added_ids[t.content] = t.id;
      // A later token with the same id replaces the earlier one (added_tokens_map_r).
      std::erase_if(kept, [&](const AddedToken& k) { return k.id == t.id || k.content == t.content; });
      kept.push_back(t);
    }
    impl->added = std::move(kept);
  }
  impl->finish(parse_tokenizer_config(config_json));
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  try {
    return from_json_checked(tokenizer_json, config_json);
  } catch (const json::exception& e) {  // a field of the wrong type (json::value's type_error, ...)
    fail(ErrorCode::kFormat, std::string("tokenizer.json / tokenizer_config.json: ") + e.what());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode(text, add_bos, parse_special, &ids);
  return ids;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  return encode(text, impl_->add_bos, true);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= impl_->vocab_size) continue;
    const uint8_t f = impl_->flags[id];
    if (!(f & 1) || (skip_special && (f & 2))) continue;
    bytes.append(impl_->decode_bytes, impl_->decode_offsets[id],
                 impl_->decode_offsets[id + 1] - impl_->decode_offsets[id]);
  }
  if (utf8_valid(bytes)) return bytes;
  std::string out;
  utf8_lossy_append(bytes, &out);
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size || !(impl_->flags[id] & 1)) return {};
  return std::string_view(impl_->decode_bytes)
      .substr(impl_->decode_offsets[id], impl_->decode_offsets[id + 1] - impl_->decode_offsets[id]);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size || !(impl_->flags[id] & 1)) return std::nullopt;
  return impl_->token_strings[id];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_ids.find(token);
  if (it != impl_->added_ids.end()) return it->second;
  auto v = impl_->bpe->vocab().find(token);
  if (v != impl_->bpe->vocab().end()) return v->second;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->flags[id] & 2);
}

int32_t Tokenizer::bos_id() const {
  return impl_->bos;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos;
}
bool Tokenizer::add_bos_default() const {
  return impl_->add_bos;
}
int32_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}

std::string Tokenizer::apply_chat_template(const std::string& messages_json,
                                           bool add_generation_prompt) const {
  if (impl_->chat_template.empty())
    fail(ErrorCode::kUnsupported, "tokenizer: no chat template (tokenizer_config.json has no chat_template)");
  if (impl_->moonshot_chat)
    return render_moonshot_chat(*impl_->moonshot_chat, messages_json, add_generation_prompt);
  if (impl_->jinja_chat)
    return render_jinja_chat(*impl_->jinja_chat, impl_->chat_variables, messages_json, add_generation_prompt);
  if (!impl_->chat_kind)
    fail(ErrorCode::kUnsupported, "tokenizer: the chat template cannot be used: " + impl_->jinja_chat_error);
  return render_chat(*impl_->chat_kind, impl_->bos_token, messages_json, add_generation_prompt);
}

// ------------------------------------------------------------------------------------------- StreamDecoder

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tokenizer_->is_special(id)) return {};
  pending_ += tokenizer_->token_bytes(id);
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(pending_.data());
  const size_t n = pending_.size();
  size_t i = 0, run = 0;
  while (i < n) {
    size_t len;
    const Utf8Kind k = utf8_next(p + i, n - i, &len);
    if (k == Utf8Kind::kValid) {
      i += len;
    } else if (k == Utf8Kind::kInvalid) {
      out.append(pending_, run, i - run);
      out += "\xEF\xBF\xBD";
      i += len;
      run = i;
    } else {
      break;  // incomplete tail: hold it back
    }
  }
  out.append(pending_, run, i - run);
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  if (!pending_.empty()) utf8_lossy_append(pending_, &out);
  pending_.clear();
  return out;
}

}  // namespace moert
