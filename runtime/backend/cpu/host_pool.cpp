#include "backend/cpu/host_pool.h"

#include <new>

namespace moert {
namespace {
constexpr size_t kMaxPooledBlock = 256u << 20;  // larger blocks (the KV cache) go straight to the system
constexpr size_t kMaxCachedBytes = 1u << 30;
}  // namespace

HostPool::~HostPool() {
  for (auto& [cls, p] : free_) ::operator delete(p, std::align_val_t(64));
}

size_t HostPool::size_class(size_t bytes) {
  // Powers of two with four steps between them: at most 19% slack.
  size_t c = 4096;
  while (c < bytes) c += c / 4 < 4096 ? 4096 : (size_t{1} << (63 - __builtin_clzll(c))) / 4;
  return c;
}

std::shared_ptr<void> HostPool::allocate(size_t bytes) {
  if (bytes > kMaxPooledBlock) {
    void* p = ::operator new(bytes, std::align_val_t(64));
    return std::shared_ptr<void>(p, [](void* q) { ::operator delete(q, std::align_val_t(64)); });
  }
  const size_t cls = size_class(bytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(cls);
    if (it != free_.end()) {
      p = it->second;
      free_.erase(it);
      cached_bytes_ -= cls;
    }
  }
  if (!p) p = ::operator new(cls, std::align_val_t(64));
  std::weak_ptr<HostPool> pool = weak_from_this();
  return std::shared_ptr<void>(p, [pool, cls](void* q) {
    if (auto self = pool.lock()) self->release(q, cls);
    else ::operator delete(q, std::align_val_t(64));
  });
}

void HostPool::release(void* p, size_t cls) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + cls <= kMaxCachedBytes) {
      free_.emplace(cls, p);
      cached_bytes_ += cls;
      return;
    }
  }
  ::operator delete(p, std::align_val_t(64));
}

}  // namespace moert
