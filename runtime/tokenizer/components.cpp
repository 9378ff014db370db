#include "tokenizer/components.h"

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace moert::tok {

using nlohmann::json;

namespace {

std::string type_of(const json& j, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(ErrorCode::kFormat, std::string("tokenizer.json: ") + what + " without a type");
  return j["type"].get<std::string>();
}

// A Split/Replace pattern: {"String": "..."} or {"Regex": "..."}.
void read_pattern(const json& j, const char* what, std::string* literal, std::unique_ptr<Regex>* regex) {
  if (!j.is_object()) fail(ErrorCode::kFormat, std::string("tokenizer.json: ") + what + " has no pattern");
  if (j.contains("String") && j["String"].is_string()) {
    *literal = j["String"].get<std::string>();
  } else if (j.contains("Regex") && j["Regex"].is_string()) {
    *regex = std::make_unique<Regex>(j["Regex"].get<std::string>());
  } else {
    fail(ErrorCode::kFormat, std::string("tokenizer.json: ") + what + " pattern is neither String nor Regex");
  }
}

void find_literal(std::string_view text, std::string_view lit, std::vector<std::pair<size_t, size_t>>* out) {
  if (lit.empty()) return;
  size_t pos = 0;
  while ((pos = text.find(lit, pos)) != std::string_view::npos) {
    out->emplace_back(pos, pos + lit.size());
    pos += lit.size();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------- Normalizer

Normalizer::Normalizer(const json& j) {
  if (!j.is_null()) add(j);
}
Normalizer::~Normalizer() = default;

void Normalizer::add(const json& j) {
  const std::string type = type_of(j, "normalizer");
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      fail(ErrorCode::kFormat, "tokenizer.json: Sequence normalizer without normalizers");
    for (const auto& n : j["normalizers"]) add(n);
  } else if (type == "Replace") {
    Step st;
    read_pattern(j.value("pattern", json()), "Replace normalizer", &st.pattern, &st.regex);
    st.kind = st.regex ? Step::kReplaceRegex : Step::kReplaceString;
    if (!j.contains("content") || !j["content"].is_string())
      fail(ErrorCode::kFormat, "tokenizer.json: Replace normalizer without content");
    st.content = j["content"].get<std::string>();
    steps_.push_back(std::move(st));
  } else if (type == "Prepend") {
    Step st;
    st.kind = Step::kPrepend;
    if (!j.contains("prepend") || !j["prepend"].is_string())
      fail(ErrorCode::kFormat, "tokenizer.json: Prepend normalizer without prepend");
    st.content = j["prepend"].get<std::string>();
    steps_.push_back(std::move(st));
  } else if (type == "Strip") {
    Step st;
    st.kind = Step::kStrip;
    st.left = j.value("strip_left", true);
    st.right = j.value("strip_right", true);
    steps_.push_back(std::move(st));
  } else {
    fail(ErrorCode::kUnsupported, "tokenizer.json: unsupported normalizer type '" + type + "'");
  }
}

std::string Normalizer::apply(std::string_view in) const {
  std::string s(in), t;
  std::vector<std::pair<size_t, size_t>> m;
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::kReplaceString:
      case Step::kReplaceRegex: {
        m.clear();
        if (st.kind == Step::kReplaceRegex) {
          st.regex->find_all(s, &m);
        } else {
          find_literal(s, st.pattern, &m);
        }
        if (m.empty()) break;
        t.clear();
        size_t prev = 0;
        for (auto [a, b] : m) {
          t.append(s, prev, a - prev);
          t += st.content;
          prev = b;
        }
        t.append(s, prev, std::string::npos);
        s.swap(t);
        break;
      }
      case Step::kPrepend:
        if (!s.empty()) s.insert(0, st.content);
        break;
      case Step::kStrip: {
        size_t b = 0, e = s.size();
        if (st.left) {
          while (b < e) {
            size_t i = b;
            if (!is_unicode_whitespace(utf8_decode(s, &i))) break;
            b = i;
          }
        }
        if (st.right) {
          while (e > b) {
            size_t start = e - 1;
            while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
            size_t i = start;
            if (!is_unicode_whitespace(utf8_decode(s, &i))) break;
            e = start;
          }
        }
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

// -------------------------------------------------------------------------------------------- PreTokenizer

PreTokenizer::PreTokenizer(const json& j) {
  if (j.is_null())
    fail(ErrorCode::kUnsupported, "tokenizer.json: no pre_tokenizer (a ByteLevel one is required)");
  const std::string type = type_of(j, "pre_tokenizer");
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail(ErrorCode::kFormat, "tokenizer.json: Sequence pre_tokenizer without pretokenizers");
    const auto& list = j["pretokenizers"];
    for (size_t i = 0; i < list.size(); ++i) add(list[i], i + 1 == list.size());
  } else {
    add(j, true);
  }
  if (steps_.empty() || !(steps_.back().kind == Step::kByteLevel ||
                          (steps_.size() >= 2 && steps_[steps_.size() - 2].kind == Step::kByteLevel)))
    fail(ErrorCode::kUnsupported,
         "tokenizer.json: the pre_tokenizer must end with ByteLevel (byte-level BPE)");
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::add(const json& j, bool last) {
  const std::string type = type_of(j, "pre_tokenizer");
  if (type == "Sequence") {
    fail(ErrorCode::kUnsupported, "tokenizer.json: nested Sequence pre_tokenizer");
  } else if (type == "Split") {
    Step st;
    read_pattern(j.value("pattern", json()), "Split pre_tokenizer", &st.literal, &st.regex);
    st.kind = st.regex ? Step::kSplitRegex : Step::kSplitString;
    const std::string b = j.value("behavior", std::string("Isolated"));
    if (b == "Removed")
      st.behavior = Behavior::kRemoved;
    else if (b == "Isolated")
      st.behavior = Behavior::kIsolated;
    else if (b == "MergedWithPrevious")
      st.behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext")
      st.behavior = Behavior::kMergedWithNext;
    else if (b == "Contiguous")
      st.behavior = Behavior::kContiguous;
    else
      fail(ErrorCode::kUnsupported, "tokenizer.json: unsupported Split behavior '" + b + "'");
    st.invert = j.value("invert", false);
    steps_.push_back(std::move(st));
  } else if (type == "Digits") {
    // char::is_numeric per character; individual digits isolated, else runs (Contiguous == runs isolated).
    Step st;
    st.kind = Step::kSplitRegex;
    st.regex = std::make_unique<Regex>(j.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    st.behavior = Behavior::kIsolated;
    steps_.push_back(std::move(st));
  } else if (type == "ByteLevel") {
    if (!last) fail(ErrorCode::kUnsupported, "tokenizer.json: ByteLevel must be the last pre_tokenizer");
    Step st;
    st.kind = Step::kByteLevel;
    st.add_prefix_space = j.value("add_prefix_space", false);
    steps_.push_back(std::move(st));
    if (j.value("use_regex", true)) {
      Step re;
      re.kind = Step::kSplitRegex;
      re.regex = std::make_unique<Regex>(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
      re.behavior = Behavior::kIsolated;
      steps_.push_back(std::move(re));
    }
  } else {
    fail(ErrorCode::kUnsupported, "tokenizer.json: unsupported pre_tokenizer type '" + type + "'");
  }
}

void PreTokenizer::apply_split(const Step& st, const std::string& buf, const std::vector<Span>& in,
                               std::vector<Span>* out) const {
  thread_local std::vector<std::pair<size_t, size_t>> m;
  thread_local std::vector<std::pair<Span, bool>> parts;  // (range, is_match)
  for (const Span& sp : in) {
    const std::string_view piece(buf.data() + sp.begin, sp.end - sp.begin);
    m.clear();
    if (st.kind == Step::kSplitRegex) {
      st.regex->find_all(piece, &m);
    } else {
      find_literal(piece, st.literal, &m);
    }
    if (m.empty() && !st.invert && st.behavior != Behavior::kRemoved) {
      out->push_back(sp);  // fast path: nothing to split
      continue;
    }
    parts.clear();
    uint32_t prev = 0;
    for (auto [a, b] : m) {
      if (prev != a) parts.push_back({Span{prev, static_cast<uint32_t>(a)}, false});
      parts.push_back({Span{static_cast<uint32_t>(a), static_cast<uint32_t>(b)}, true});
      prev = static_cast<uint32_t>(b);
    }
    if (prev != piece.size()) parts.push_back({Span{prev, static_cast<uint32_t>(piece.size())}, false});
    if (st.invert)
      for (auto& p : parts) p.second = !p.second;
    auto emit = [&](Span s) {
      if (s.end > s.begin) out->push_back(Span{sp.begin + s.begin, sp.begin + s.end});
    };
    switch (st.behavior) {
      case Behavior::kRemoved:
        for (auto& [s, is_match] : parts)
          if (!is_match) emit(s);
        break;
      case Behavior::kIsolated:
        for (auto& [s, is_match] : parts) emit(s);
        break;
      case Behavior::kMergedWithPrevious: {
        std::vector<Span> acc;
        bool prev_match = false;
        for (auto& [s, is_match] : parts) {
          if (is_match && !prev_match && !acc.empty()) {
            acc.back().end = s.end;
          } else {
            acc.push_back(s);
          }
          prev_match = is_match;
        }
        for (Span s : acc) emit(s);
        break;
      }
      case Behavior::kMergedWithNext: {
        std::vector<Span> acc;
        bool prev_match = false;
        for (size_t k = parts.size(); k-- > 0;) {
          auto& [s, is_match] = parts[k];
          if (is_match && !prev_match && !acc.empty()) {
            acc.back().begin = s.begin;
          } else {
            acc.push_back(s);
          }
          prev_match = is_match;
        }
        for (size_t k = acc.size(); k-- > 0;) emit(acc[k]);
        break;
      }
      case Behavior::kContiguous: {
        std::vector<Span> acc;
        bool prev_match = false;
        for (auto& [s, is_match] : parts) {
          if (is_match == prev_match && !acc.empty()) {
            acc.back().end = s.end;
          } else {
            acc.push_back(s);
          }
          prev_match = is_match;
        }
        for (Span s : acc) emit(s);
        break;
      }
    }
  }
}

void PreTokenizer::split(std::string* buf, std::vector<Span>* out) const {
  thread_local std::vector<Span> a, b;
  a.clear();
  if (buf->empty()) {
    out->clear();
    return;
  }
  a.push_back(Span{0, static_cast<uint32_t>(buf->size())});
  for (const Step& st : steps_) {
    b.clear();
    if (st.kind == Step::kByteLevel) {
      if (!st.add_prefix_space) continue;
      for (const Span& sp : a) {
        if ((*buf)[sp.begin] == ' ') {
          b.push_back(sp);
        } else {
          const uint32_t start = static_cast<uint32_t>(buf->size());
          const std::string piece = buf->substr(sp.begin, sp.end - sp.begin);
          buf->push_back(' ');
          buf->append(piece);
          b.push_back(Span{start, static_cast<uint32_t>(buf->size())});
        }
      }
    } else {
      apply_split(st, *buf, a, &b);
    }
    a.swap(b);
  }
  out->assign(a.begin(), a.end());
}

}  // namespace moert::tok
