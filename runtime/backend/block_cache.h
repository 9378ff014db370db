// The bookkeeping shared by the backends' caching allocators: blocks are rounded up to size classes, and
// freed blocks wait in a free list for the next request of their class (the allocation itself stays with
// each backend: aligned host memory, cudaMalloc).
#pragma once
#include <cstddef>
#include <map>
#include <mutex>

namespace moert {

class BlockCache {
 public:
  // Powers of two with four steps between them from 4 KiB: at most 25% slack.
  static size_t size_class(size_t bytes) {
    size_t c = 4096;
    while (c < bytes) c += c < 16384 ? 4096 : (size_t{1} << (63 - __builtin_clzll(c))) / 4;
    return c;
  }
  // A cached block of class `cls`, or nullptr.
  void* take(size_t cls) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(cls);
    if (it == free_.end()) return nullptr;
    void* p = it->second;
    free_.erase(it);
    cached_bytes_ -= cls;
    return p;
  }
  // Keeps `p` for reuse unless that would cache more than `limit` bytes; false: the caller frees it.
  bool give(void* p, size_t cls, size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + cls > limit) return false;
    free_.emplace(cls, p);
    cached_bytes_ += cls;
    return true;
  }
  // Hands every cached block to `free_block` and forgets them.
  template <typename F>
  void drain(F&& free_block) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [cls, p] : free_) free_block(p);
    free_.clear();
    cached_bytes_ = 0;
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t cached_bytes_ = 0;
};

}  // namespace moert
