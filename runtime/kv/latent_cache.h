// The latent KV cache: per token per layer, kv_lora_rank normalised latent values followed by
// qk_rope_head_dim rotated rope-key values (DeepSeek MLA's compressed cache). Storage is one pool of
// fixed-size pages on the backend's device; a sequence owns a page table, the same for all layers.
// All sequences draw pages from one budget: a sequence that cannot grow gets Error(kOutOfMemory) and the
// others are unaffected.
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "backend/backend.h"

namespace moert {

class LatentCache;

// One sequence's view of the cache. Move-only; returns its pages on destruction.
class KvSequence {
 public:
  KvSequence() = default;
  explicit KvSequence(LatentCache* cache) : cache_(cache) {}
  ~KvSequence();
  KvSequence(KvSequence&& o) noexcept { *this = std::move(o); }
  KvSequence& operator=(KvSequence&& o) noexcept;
  KvSequence(const KvSequence&) = delete;
  KvSequence& operator=(const KvSequence&) = delete;

  int64_t length() const { return length_; }
  // Makes room for `extra` more tokens (allocating pages); throws Error(kOutOfMemory) when the budget is
  // spent.
  void reserve(int64_t extra);
  // Marks `n` more tokens as written (after the forward pass wrote them).
  void advance(int64_t n) { length_ += n; }
  // Forgets tokens after `n` (keeps the pages).
  void truncate(int64_t n) { length_ = n < length_ ? n : length_; }
  const std::vector<int32_t>& pages() const { return pages_; }
  int64_t page_rows() const;
  LatentCache* cache() const { return cache_; }

 private:
  LatentCache* cache_ = nullptr;
  std::vector<int32_t> pages_;
  int64_t length_ = 0;
};

class LatentCache {
 public:
  // `layers` cache slots (main layers plus MTP), `width` floats per token, `page_rows` tokens per page,
  // at most `budget_bytes` of storage (at least one page).
  // dtype: kF32 (the CPU's, and the reference), or kBF16 (a GPU's default: half the bytes; the attention ops
  // read it in fp32).
  LatentCache(Backend& backend, int64_t layers, int64_t width, int64_t page_rows, int64_t budget_bytes,
              DType dtype = DType::kF32);

  int64_t page_rows() const { return page_rows_; }
  int64_t total_pages() const { return total_pages_; }
  int64_t free_pages() const;
  int64_t bytes_per_token() const { return layers_ * width_ * static_cast<int64_t>(dtype_size(dtype_)); }
  DType dtype() const { return dtype_; }
  int64_t capacity_tokens() const { return total_pages_ * page_rows_; }
  // A page no sequence ever gets: the rows that pad a batch to a fixed size (CUDA graphs) write there.
  int32_t scratch_page() const { return static_cast<int32_t>(total_pages_); }
  // Cache slot `layer`'s storage as the attention ops see it.
  LatentPool layer(int64_t layer) const;

 private:
  friend class KvSequence;
  bool allocate(int64_t count, std::vector<int32_t>& out);
  void release(const std::vector<int32_t>& pages);

  int64_t layers_, width_, page_rows_, total_pages_;
  DType dtype_;
  Tensor storage_;  // [total_pages * layers, page_rows * width]: page p of layer l is row p * layers + l
  mutable std::mutex mu_;
  std::vector<int32_t> free_;
};

}  // namespace moert
