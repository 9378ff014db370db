#include "kv/kv_transfer.h"

#include <cstring>

#include "util/error.h"

namespace moert {
std::vector<uint8_t> export_kv(Backend& b, const LatentCache& cache, const KvSequence& kv, int64_t layers,
                               const KvImageShape& shape, const std::vector<int32_t>& tokens,
                               const std::vector<float>& last_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0 || kv.length() != n)
    fail(ErrorCode::kInvalidArgument, "export: the sequence holds " + std::to_string(kv.length()) +
                                          " tokens; nothing to export unless it holds at least one");
  const Tensor slots = cache.slots(kv.pages(), n);
  Tensor rows = b.empty(DType::kF32, n, shape.width);
  std::vector<std::vector<float>> by_layer(layers, std::vector<float>(n * shape.width));
  for (int64_t l = 0; l < layers; ++l) {
    b.cache_gather(cache.layer(l), slots, rows);
    b.copy_to_host(rows, by_layer[l].data());
  }
  return write_kv_image(shape, tokens, last_logits, by_layer);
}

void import_kv(Backend& b, LatentCache& cache, KvSequence& kv, int64_t layers, const KvImageView& image) {
  if (kv.length() != 0 || !kv.pages().empty()) fail(ErrorCode::kInternal, "import into a used sequence");
  const int64_t n = image.n, width = cache.layer(0).width;
  kv.reserve(n);
  const Tensor slots = cache.slots(kv.pages(), n);
  std::vector<float> host(n * width);
  Tensor rows = b.empty(DType::kF32, n, width);
  for (int64_t l = 0; l < layers; ++l) {
    std::memcpy(host.data(), image.kv + static_cast<size_t>(l * n * width) * 4, host.size() * 4);
    b.copy_from_host(host.data(), rows);
    b.cache_write(rows, cache.layer(l), slots);
  }
  // The MTP layer's slot: not in the image (the module's entries are a draft's, not the sequence's).
  std::fill(host.begin(), host.end(), 0.0f);
  b.copy_from_host(host.data(), rows);
  for (int64_t l = layers; l < cache.layers(); ++l) b.cache_write(rows, cache.layer(l), slots);
  kv.advance(n);
}

}  // namespace moert
