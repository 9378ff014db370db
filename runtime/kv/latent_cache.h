// The latent KV cache: per token per layer, kv_lora_rank normalised latent values followed by
// qk_rope_head_dim rotated rope-key values (DeepSeek MLA's compressed cache). Storage is one pool of
// fixed-size pages on the backend's device; a sequence owns a page table, the same for all layers.
// All sequences draw pages from one budget: a sequence that cannot grow gets Error(kOutOfMemory) and the
// others are unaffected.
//
// Prefix cache (when enabled): the full pages of finished or prefilled sequences stay indexed by their
// tokens (PrefixTree) and a new sequence with the same prompt prefix starts from them. Pages are reference
// counted: a shared page is read-only (a sequence only ever writes at and after its length, and a page
// matched in part is copied before the sequence writes into it); pages held by the cache alone are
// reclaimed, least recently used first, when an allocation would otherwise fail, so they never take budget
// from a running sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "kv/prefix_tree.h"

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
  friend class LatentCache;
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
  int64_t layers() const { return layers_; }
  // Pages a sequence can get now: free ones and those only the prefix cache holds.
  int64_t free_pages() const;
  // Pages the prefix cache holds (some may be shared with running sequences).
  int64_t cached_pages() const;

  // The prefix cache, off until enabled; disabling drops what it holds.
  void set_prefix_cache(bool on);
  bool prefix_cache() const;
  // Starts the empty sequence `seq` from the longest cached prefix of tokens[0, n): the matched full pages
  // shared, a page matched in part copied (the sequence writes into it next). Returns the tokens it now
  // holds (0 when the cache is off, finds nothing, or has no page free for the copy).
  int64_t attach_prefix(KvSequence& seq, const int32_t* tokens, int64_t n);
  // Offers the full pages of `seq` (tokens: the seq.length() tokens it holds) to the prefix cache.
  void publish(const KvSequence& seq, const int32_t* tokens);
  int64_t bytes_per_token() const { return layers_ * width_ * static_cast<int64_t>(dtype_size(dtype_)); }
  DType dtype() const { return dtype_; }
  int64_t capacity_tokens() const { return total_pages_ * page_rows_; }
  // A page no sequence ever gets: the rows that pad a batch to a fixed size (CUDA graphs) write there.
  int32_t scratch_page() const { return static_cast<int32_t>(total_pages_); }
  // The cache slots (I32 [n, 1], in the backend's memory) of positions [0, n) of a sequence on `pages`.
  Tensor slots(const std::vector<int32_t>& pages, int64_t n) const;
  // Cache slot `layer`'s storage as the attention ops see it.
  LatentPool layer(int64_t layer) const;

 private:
  friend class KvSequence;
  bool allocate(int64_t count, std::vector<int32_t>& out);
  void release(const std::vector<int32_t>& pages);
  // mu_ held: one reference less on each page; a page nobody holds goes back to the free list.
  void unref(const std::vector<int32_t>& pages);
  // The pages of `seq` at and after its length that others share replaced by private copies.
  void make_writable(KvSequence& seq);
  // Every layer's rows of page `from` copied to page `to` (backend ops; mu_ not held).
  void copy_page(int32_t from, int32_t to);

  Backend& backend_;
  int64_t layers_, width_, page_rows_, total_pages_;
  DType dtype_;
  Tensor storage_;  // [total_pages * layers, page_rows * width]: page p of layer l is row p * layers + l
  mutable std::mutex mu_;
  std::vector<int32_t> free_;
  std::vector<int32_t> refs_;     // per page: the sequences and the prefix cache holding it
  std::vector<uint8_t> in_tree_;  // per page: the prefix cache holds it (one of its refs)
  std::unique_ptr<PrefixTree> prefix_;
};

}  // namespace moert
