// The KV hand-off format: one sequence's latent cache (main layers, fp32 rows), its tokens and the logits of
// its last token, as bytes another process that loaded the same checkpoint imports to continue decoding
// (prefill/decode separation). Little-endian:
//   "MOERTKV\0" | u32 version | u32 header bytes (64) | u64 checkpoint fingerprint | u32 layers | u32 width |
//   u32 vocab | u32 flags (1: last logits present) | u64 tokens | u64 payload bytes | 8 reserved bytes |
//   i32 tokens[n] | f32 logits[vocab] (when present) | f32 kv[layers][n][width] | u64 FNV-1a of all before.
// Parsing checks everything before it trusts anything and names the check that failed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moert {

inline constexpr uint32_t kKvImageVersion = 1;

// What the importing model expects.
struct KvImageShape {
  uint64_t fingerprint = 0;
  int64_t layers = 0, width = 0, vocab = 0, max_tokens = 0;
};

// A parsed image: views into the caller's bytes.
struct KvImageView {
  std::vector<int32_t> token_ids;
  std::vector<float> last_logits;  // empty when the image has none
  const uint8_t* kv = nullptr;     // f32 [layers][n][width], possibly unaligned: read with memcpy
  int64_t n = 0;
};

// The image of `n` tokens. kv_rows(layer, dst) fills dst [n * width] floats with that layer's rows.
std::vector<uint8_t> write_kv_image(const KvImageShape& shape, const std::vector<int32_t>& tokens,
                                    const std::vector<float>& last_logits,
                                    const std::vector<std::vector<float>>& kv_by_layer);

// Error(kFormat) naming the failed check (magic, version, truncated, checksum, fingerprint, layers, width,
// vocab, token count, token id) unless `data` is a well-formed image for `shape`.
KvImageView parse_kv_image(const void* data, size_t size, const KvImageShape& shape);

// 64-bit FNV-1a, the image's checksum (and the fingerprint's hash).
uint64_t fnv1a64(const void* data, size_t size, uint64_t h = 1469598103934665603ull);

}  // namespace moert
