// libFuzzer target: parse_kv_image (the KV hand-off import parser) on arbitrary bytes must never crash or
// read out of bounds; it throws moert::Error(kFormat) or returns a view whose every part lies inside the
// input and agrees with the expected shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kv/kv_image.h"
#include "util/error.h"

namespace {

moert::KvImageShape shape() {
  moert::KvImageShape s;
  s.fingerprint = 0x1234abcd5678ef00ull;
  s.layers = 2;
  s.width = 3;
  s.vocab = 11;
  s.max_tokens = 64;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const moert::KvImageShape s = shape();
  try {
    const moert::KvImageView v = moert::parse_kv_image(data, size, s);
    if (v.n < 1 || v.n >= s.max_tokens || static_cast<int64_t>(v.token_ids.size()) != v.n) std::abort();
    for (int32_t t : v.token_ids)
      if (t < 0 || t >= s.vocab) std::abort();
    if (!v.last_logits.empty() && static_cast<int64_t>(v.last_logits.size()) != s.vocab) std::abort();
    const size_t kv_bytes = static_cast<size_t>(s.layers * v.n * s.width) * 4;
    if (v.kv < data || v.kv + kv_bytes + 8 > data + size) std::abort();
    volatile float sum = 0;
    for (size_t i = 0; i < kv_bytes; i += 4) {
      float x;
      std::memcpy(&x, v.kv + i, 4);
      sum = sum + x;
    }
  } catch (const moert::Error& e) {
    if (e.code() != moert::ErrorCode::kFormat) std::abort();
  }
  return 0;
}
