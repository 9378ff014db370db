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
    : layers_(layers), width_(width), page_rows_(page_rows), dtype_(dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16)
    fail(ErrorCode::kInvalidArgument,
         std::string("KV cache dtype ") + dtype_name(dtype) + " is not supported");
  const int64_t page_bytes = layers * width * page_rows * static_cast<int64_t>(dtype_size(dtype));
  total_pages_ = std::max<int64_t>(1, budget_bytes / page_bytes);
  // One page more than the budget's: the scratch page padded batch rows write to (never a sequence's).
  storage_ = backend.empty(dtype, (total_pages_ + 1) * layers, page_rows * width);
  free_.resize(total_pages_);
  for (int64_t i = 0; i < total_pages_; ++i) free_[i] = static_cast<int32_t>(total_pages_ - 1 - i);
}

int64_t LatentCache::free_pages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(free_.size());
}

bool LatentCache::allocate(int64_t count, std::vector<int32_t>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int64_t>(free_.size()) < count) return false;
  for (int64_t i = 0; i < count; ++i) {
    out.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void LatentCache::release(const std::vector<int32_t>& pages) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.insert(free_.end(), pages.begin(), pages.end());
}

}  // namespace moert
