// A sequence's latent cache to and from the KV image (kv/kv_image.h) through the backend: the main layers'
// rows in fp32 whatever the cache's dtype (a bf16 cache widens and narrows back to the same bits).
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_image.h"
#include "kv/latent_cache.h"

namespace moert {

// The image of `kv`'s first tokens.size() tokens (kv.length() must equal it) in cache slots [0, layers).
std::vector<uint8_t> export_kv(Backend& backend, const LatentCache& cache, const KvSequence& kv,
                               int64_t layers, const KvImageShape& shape, const std::vector<int32_t>& tokens,
                               const std::vector<float>& last_logits);

// Fills the empty sequence `kv` from a parsed image (its pages reserved: Error(kOutOfMemory) when the budget
// is spent). Cache slots past `layers` (the MTP layer's) are zeroed for those tokens.
void import_kv(Backend& backend, LatentCache& cache, KvSequence& kv, int64_t layers,
               const KvImageView& image);

}  // namespace moert
