#include "backend/cpu/host_pool.h"

#include <new>

namespace moert {
namespace {
constexpr size_t kMaxPooledBlock = 256u << 20;  // larger blocks (the KV cache) go straight to the system
constexpr size_t kMaxCachedBytes = 1u << 30;

void free_block(void* p) {
  ::operator delete(p, std::align_val_t(64));
}
}  // namespace

HostPool::~HostPool() {
  cache_.drain(free_block);
}

std::shared_ptr<void> HostPool::allocate(size_t bytes) {
  if (bytes > kMaxPooledBlock)
    return std::shared_ptr<void>(::operator new(bytes, std::align_val_t(64)), free_block);
  const size_t cls = BlockCache::size_class(bytes);
  void* p = cache_.take(cls);
  if (!p) p = ::operator new(cls, std::align_val_t(64));
  std::weak_ptr<HostPool> pool = weak_from_this();
  return std::shared_ptr<void>(p, [pool, cls](void* q) {
    auto self = pool.lock();
    if (!self || !self->cache_.give(q, cls, kMaxCachedBytes)) free_block(q);
  });
}

}  // namespace moert
