// UTF-8 helpers with Rust's semantics (std::str::from_utf8, String::from_utf8_lossy, char::is_whitespace).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moert::tok {

enum class Utf8Kind { kValid, kInvalid, kIncomplete };

// Classifies the sequence starting at p (avail >= 1 bytes). kValid: *len is its length. kInvalid: *len bytes
// form one maximal invalid subpart (one U+FFFD). kIncomplete: all avail bytes are a valid but unfinished
// prefix (*len = avail).
inline Utf8Kind utf8_next(const unsigned char* p, size_t avail, size_t* len) {
  const unsigned char b0 = p[0];
  if (b0 < 0x80) {
    *len = 1;
    return Utf8Kind::kValid;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *len = 1;
    return Utf8Kind::kInvalid;
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= avail) {
      *len = avail;
      return Utf8Kind::kIncomplete;
    }
    const unsigned char b = p[i];
    const unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *len = i;
      return Utf8Kind::kInvalid;
    }
  }
  *len = need;
  return Utf8Kind::kValid;
}

// True when s is well-formed UTF-8.
bool utf8_valid(std::string_view s);

// Appends s to out as from_utf8_lossy would convert it.
void utf8_lossy_append(std::string_view s, std::string* out);

// Decodes the code point at s[i] (s must be valid UTF-8); advances i.
inline uint32_t utf8_decode(std::string_view s, size_t* i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + *i;
  uint32_t c = p[0];
  if (c < 0x80) {
    *i += 1;
    return c;
  }
  if (c < 0xE0) {
    *i += 2;
    return ((c & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (c < 0xF0) {
    *i += 3;
    return ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *i += 4;
  return ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// The code point at s[i] of text that may be invalid UTF-8 (an invalid byte is one U+FFFD); *len: its bytes.
inline uint32_t utf8_decode_lossy(std::string_view s, size_t i, size_t* len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + i);
  if (utf8_next(p, s.size() - i, len) != Utf8Kind::kValid || *len == 1) {
    *len = 1;
    return p[0] < 0x80 ? p[0] : 0xFFFD;
  }
  uint32_t c = p[0] & (0xFF >> (*len + 1));
  for (size_t k = 1; k < *len; ++k) c = (c << 6) | (p[k] & 0x3F);
  return c;
}

// The length in bytes of the code point that ends at s[e - 1], not starting before s[b] (an invalid byte:
// 1); e > b.
inline size_t utf8_last_length(std::string_view s, size_t b, size_t e) {
  size_t k = e - 1;
  while (k > b && e - k < 4 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  size_t len = 1;
  utf8_decode_lossy(s, k, &len);
  return k + len == e ? len : 1;
}

void utf8_append(uint32_t cp, std::string* out);

// Python's str.isspace (TikTokenTokenizer's run splitting; str.strip/split in chat templates).
inline bool py_isspace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Rust's char::is_whitespace (the Unicode White_Space property).
inline bool is_unicode_whitespace(uint32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace moert::tok
