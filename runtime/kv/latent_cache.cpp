#include "kv/latent_cache.h"

#include <algorithm>
#include <string>

#include "util/error.h"

namespace moert {

KvSequence::~KvSequence() {
  if (cache_ && !pages_.empty()) cache_->release(pages_);
}

KvSequence& KvSequence::operator=(KvSequence&& o) noexcept {
  if (this != &o) {
    if (cache_ && !pages_.empty()) cache_->release(pages_);
    cache_ = o.cache_;
    pages_ = std::move(o.pages_);
    length_ = o.length_;
    o.pages_.clear();
    o.length_ = 0;
  }
  return *this;
}

void KvSequence::reserve(int64_t extra) {
  if (!cache_) fail(ErrorCode::kInternal, "KvSequence without a cache");
  const int64_t need_tokens = length_ + extra;
  const int64_t need_pages = (need_tokens + cache_->page_rows_ - 1) / cache_->page_rows_;
  // A page this sequence shares (prefix cache) is read-only: writing into one (after a truncate) copies it.
  if (length_ < static_cast<int64_t>(pages_.size()) * cache_->page_rows_) cache_->make_writable(*this);
  const int64_t missing = need_pages - static_cast<int64_t>(pages_.size());
  if (missing <= 0) return;
  if (!cache_->allocate(missing, pages_))
    fail(ErrorCode::kOutOfMemory, "KV cache full: this sequence needs " + std::to_string(need_tokens) +
                                      " tokens (" + std::to_string(need_pages) + " pages) but only " +
                                      std::to_string(cache_->free_pages()) + " of " +
                                      std::to_string(cache_->total_pages_) + " pages of " +
                                      std::to_string(cache_->page_rows_) +
                                      " tokens are free; raise the KV-cache budget or shorten the request");
}

int64_t KvSequence::page_rows() const {
  if (!cache_) fail(ErrorCode::kInternal, "KvSequence without a cache");
  return cache_->page_rows();
}

LatentPool LatentCache::layer(int64_t layer) const {
  LatentPool p;
  p.pool = storage_.slice_rows(layer, storage_.rows - layer);
  p.page_rows = page_rows_;
  p.page_stride = layers_ * page_rows_ * width_;
  p.width = width_;
  return p;
}

LatentCache::LatentCache(Backend& backend, int64_t layers, int64_t width, int64_t page_rows,
                         int64_t budget_bytes, DType dtype)
    : backend_(backend), layers_(layers), width_(width), page_rows_(page_rows), dtype_(dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16)
    fail(ErrorCode::kInvalidArgument,
         std::string("KV cache dtype ") + dtype_name(dtype) + " is not supported");
  const int64_t page_bytes = layers * width * page_rows * static_cast<int64_t>(dtype_size(dtype));
  total_pages_ = std::max<int64_t>(1, budget_bytes / page_bytes);
  // One page more than the budget's: the scratch page padded batch rows write to (never a sequence's).
  storage_ = backend.empty(dtype, (total_pages_ + 1) * layers, page_rows * width);
  free_.resize(total_pages_);
  for (int64_t i = 0; i < total_pages_; ++i) free_[i] = static_cast<int32_t>(total_pages_ - 1 - i);
  refs_.assign(total_pages_, 0);
  in_tree_.assign(total_pages_, 0);
}

int64_t LatentCache::free_pages() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = static_cast<int64_t>(free_.size());
  for (int64_t p = 0; p < total_pages_; ++p) n += in_tree_[p] && refs_[p] == 1;
  return n;
}

int64_t LatentCache::cached_pages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return prefix_ ? prefix_->nodes() : 0;
}

void LatentCache::set_prefix_cache(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  if (on && !prefix_) prefix_ = std::make_unique<PrefixTree>(page_rows_);
  if (!on && prefix_) {
    const std::vector<int32_t> pages = prefix_->clear();
    for (int32_t p : pages) in_tree_[p] = 0;
    unref(pages);
    prefix_.reset();
  }
}

bool LatentCache::prefix_cache() const {
  std::lock_guard<std::mutex> lock(mu_);
  return prefix_ != nullptr;
}

bool LatentCache::allocate(int64_t count, std::vector<int32_t>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  // Short of free pages: the prefix cache gives back its least recently used pages nobody else holds.
  while (static_cast<int64_t>(free_.size()) < count && prefix_) {
    const std::vector<int32_t> dropped = prefix_->evict_one([&](int32_t p) { return refs_[p] == 1; });
    if (dropped.empty()) break;
    for (int32_t p : dropped) in_tree_[p] = 0;
    unref(dropped);
  }
  if (static_cast<int64_t>(free_.size()) < count) return false;
  for (int64_t i = 0; i < count; ++i) {
    refs_[free_.back()] = 1;
    out.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void LatentCache::unref(const std::vector<int32_t>& pages) {
  for (int32_t p : pages)
    if (--refs_[p] == 0) free_.push_back(p);
}

void LatentCache::release(const std::vector<int32_t>& pages) {
  std::lock_guard<std::mutex> lock(mu_);
  unref(pages);
}

Tensor LatentCache::slots(const std::vector<int32_t>& pages, int64_t n) const {
  std::vector<int32_t> s(n);
  for (int64_t i = 0; i < n; ++i)
    s[i] = static_cast<int32_t>(pages[i / page_rows_] * page_rows_ + i % page_rows_);
  Tensor t = backend_.empty(DType::kI32, n, 1);
  backend_.copy_from_host_i32(s.data(), t);
  return t;
}

void LatentCache::copy_page(int32_t from, int32_t to) {
  const Tensor src_slots = slots({from}, page_rows_), dst_slots = slots({to}, page_rows_);
  Tensor rows = backend_.empty(DType::kF32, page_rows_, width_);
  // Through fp32 rows: exact for both cache dtypes (bf16 widens and narrows back to the same bits).
  for (int64_t l = 0; l < layers_; ++l) {
    const LatentPool pool = layer(l);
    backend_.cache_gather(pool, src_slots, rows);
    backend_.cache_write(rows, pool, dst_slots);
  }
}

void LatentCache::make_writable(KvSequence& seq) {
  for (size_t i = static_cast<size_t>(seq.length_ / page_rows_); i < seq.pages_.size(); ++i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (refs_[seq.pages_[i]] <= 1) continue;
    }
    std::vector<int32_t> fresh;
    if (!allocate(1, fresh))
      fail(ErrorCode::kOutOfMemory,
           "KV cache full: no page free to copy a shared prefix page before writing it");
    copy_page(seq.pages_[i], fresh[0]);
    std::lock_guard<std::mutex> lock(mu_);
    unref({seq.pages_[i]});
    seq.pages_[i] = fresh[0];
  }
}

int64_t LatentCache::attach_prefix(KvSequence& seq, const int32_t* tokens, int64_t n) {
  if (seq.cache_ != this || !seq.pages_.empty() || seq.length_ != 0)
    fail(ErrorCode::kInternal, "attach_prefix needs an empty sequence of this cache");
  PrefixTree::Match m;
  int32_t copy = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!prefix_ || n <= 0) return 0;
    m = prefix_->match(tokens, n);
    if (m.tokens == 0) return 0;
    for (int32_t p : m.pages) ++refs_[p];  // held while we copy (and so not evicted for it)
  }
  if (m.full_pages < static_cast<int64_t>(m.pages.size())) {
    // Matched in part: the sequence writes into this page next, so it gets its own copy.
    std::vector<int32_t> fresh;
    if (allocate(1, fresh)) {
      copy = fresh[0];
      copy_page(m.pages.back(), copy);
    }
    std::lock_guard<std::mutex> lock(mu_);
    unref({m.pages.back()});
    m.pages.pop_back();
    if (copy >= 0)
      m.pages.push_back(copy);
    else
      m.tokens = m.full_pages * page_rows_;
  }
  seq.pages_ = std::move(m.pages);
  seq.length_ = m.tokens;
  return m.tokens;
}

void LatentCache::publish(const KvSequence& seq, const int32_t* tokens) {
  if (seq.cache_ != this) fail(ErrorCode::kInternal, "publish: the sequence is not of this cache");
  std::lock_guard<std::mutex> lock(mu_);
  if (!prefix_) return;
  const int64_t full = std::min<int64_t>(seq.length_ / page_rows_, static_cast<int64_t>(seq.pages_.size()));
  for (int32_t p : prefix_->insert(tokens, seq.pages_, full)) {
    ++refs_[p];
    in_tree_[p] = 1;
  }
}

}  // namespace moert
