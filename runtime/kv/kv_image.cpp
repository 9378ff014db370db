#include "kv/kv_image.h"

#include <cmath>
#include <cstring>

#include "util/error.h"

namespace moert {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'R', 'T', 'K', 'V', '\0'};
constexpr size_t kHeaderBytes = 64;

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

template <class T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

[[noreturn]] void bad(const std::string& check, const std::string& what) {
  fail(ErrorCode::kFormat, "KV image rejected (" + check + "): " + what);
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t h) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::vector<uint8_t> write_kv_image(const KvImageShape& shape, const std::vector<int32_t>& tokens,
                                    const std::vector<float>& last_logits,
                                    const std::vector<std::vector<float>>& kv_by_layer) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (static_cast<int64_t>(kv_by_layer.size()) != shape.layers)
    fail(ErrorCode::kInternal, "write_kv_image: one row block per layer");
  for (const auto& l : kv_by_layer)
    if (static_cast<int64_t>(l.size()) != n * shape.width) fail(ErrorCode::kInternal, "write_kv_image: rows");
  if (!last_logits.empty() && static_cast<int64_t>(last_logits.size()) != shape.vocab)
    fail(ErrorCode::kInternal, "write_kv_image: logits");
  const uint64_t payload = static_cast<uint64_t>(n) * 4 + last_logits.size() * 4 +
                           static_cast<uint64_t>(shape.layers * n * shape.width) * 4;
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + payload + 8);
  for (char c : kMagic)
    out.push_back(static_cast<uint8_t>(c));  // (insert from a char range: GCC 12 false -Wstringop-overflow)
  put<uint32_t>(out, kKvImageVersion);
  put<uint32_t>(out, kHeaderBytes);
  put<uint64_t>(out, shape.fingerprint);
  put<uint32_t>(out, static_cast<uint32_t>(shape.layers));
  put<uint32_t>(out, static_cast<uint32_t>(shape.width));
  put<uint32_t>(out, static_cast<uint32_t>(shape.vocab));
  put<uint32_t>(out, last_logits.empty() ? 0u : 1u);
  put<uint64_t>(out, static_cast<uint64_t>(n));
  put<uint64_t>(out, payload);
  put<uint64_t>(out, 0);
  auto append = [&](const void* p, size_t bytes) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + bytes);
  };
  append(tokens.data(), tokens.size() * 4);
  append(last_logits.data(), last_logits.size() * 4);
  for (const auto& l : kv_by_layer) append(l.data(), l.size() * 4);
  put<uint64_t>(out, fnv1a64(out.data(), out.size()));
  return out;
}

KvImageView parse_kv_image(const void* data, size_t size, const KvImageShape& shape) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (!p && size > 0) bad("input", "no data");
  if (size < kHeaderBytes + 8)
    bad("truncated", std::to_string(size) + " bytes is shorter than the " + std::to_string(kHeaderBytes + 8) +
                         "-byte header and checksum");
  if (std::memcmp(p, kMagic, 8) != 0) bad("magic", "not a moert KV image");
  const uint32_t version = get<uint32_t>(p + 8);
  if (version != kKvImageVersion)
    bad("version", "version " + std::to_string(version) + "; this moert reads version " +
                       std::to_string(kKvImageVersion));
  if (get<uint32_t>(p + 12) != kHeaderBytes) bad("header", "unexpected header size");
  const uint64_t fingerprint = get<uint64_t>(p + 16);
  const uint32_t layers = get<uint32_t>(p + 24), width = get<uint32_t>(p + 28), vocab = get<uint32_t>(p + 32),
                 flags = get<uint32_t>(p + 36);
  const uint64_t n = get<uint64_t>(p + 40), payload = get<uint64_t>(p + 48);
  if (flags > 1) bad("flags", "unknown flags " + std::to_string(flags));
  // Sizes from the header, computed without overflow before anything is read with them.
  if (n > (1ull << 40) || layers > (1u << 20) || width > (1u << 24) || vocab > (1u << 28))
    bad("sizes", "implausible header values");
  const uint64_t want_payload = n * 4 + (flags ? uint64_t{vocab} * 4 : 0) + uint64_t{layers} * n * width * 4;
  if (payload != want_payload) bad("sizes", "the payload size disagrees with the header's counts");
  if (size != kHeaderBytes + payload + 8)
    bad("truncated",
        std::to_string(size) + " bytes where the header says " + std::to_string(kHeaderBytes + payload + 8));
  if (get<uint64_t>(p + size - 8) != fnv1a64(p, size - 8)) bad("checksum", "the bytes are corrupt");
  if (fingerprint != shape.fingerprint)
    bad("fingerprint", "the image was made with another checkpoint (config or weights differ)");
  if (layers != shape.layers)
    bad("layers", std::to_string(layers) + " layers; this model has " + std::to_string(shape.layers));
  if (width != shape.width)
    bad("width", std::to_string(width) + " values per token; this model has " + std::to_string(shape.width));
  if (vocab != shape.vocab)
    bad("vocab", "vocabulary " + std::to_string(vocab) + "; this model has " + std::to_string(shape.vocab));
  if (n == 0) bad("token count", "no tokens");
  if (static_cast<int64_t>(n) >= shape.max_tokens)
    bad("token count", std::to_string(n) + " tokens leave no room in the context length " +
                           std::to_string(shape.max_tokens));
  KvImageView v;
  v.n = static_cast<int64_t>(n);
  const uint8_t* at = p + kHeaderBytes;
  v.token_ids.resize(n);
  std::memcpy(v.token_ids.data(), at, n * 4);
  for (uint64_t i = 0; i < n; ++i)
    if (v.token_ids[i] < 0 || v.token_ids[i] >= static_cast<int32_t>(vocab))
      bad("token id", "token " + std::to_string(v.token_ids[i]) + " at position " + std::to_string(i) +
                          " is outside the vocabulary");
  at += n * 4;
  if (flags) {
    v.last_logits.resize(vocab);
    std::memcpy(v.last_logits.data(), at, uint64_t{vocab} * 4);
    at += uint64_t{vocab} * 4;
  }
  v.kv = at;
  // Non-finite values would decode to garbage: rejected like a NaN weight.
  const uint64_t floats = (flags ? uint64_t{vocab} : 0) + uint64_t{layers} * n * width;
  const uint8_t* f = p + kHeaderBytes + n * 4;
  for (uint64_t i = 0; i < floats; ++i) {
    const float x = get<float>(f + i * 4);
    if (!std::isfinite(x))
      bad("values", std::string(flags && i < vocab ? "a logit" : "a cache value") + " is NaN or infinite");
  }
  return v;
}

}  // namespace moert
