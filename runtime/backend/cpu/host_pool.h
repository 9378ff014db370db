// A caching allocator for the CPU backend's activation tensors: freed blocks are kept by size class and
// handed out again, so a forward pass reuses warm pages instead of faulting in fresh ones on every op.
#pragma once
#include <cstddef>
#include <memory>

#include "backend/block_cache.h"

namespace moert {

class HostPool : public std::enable_shared_from_this<HostPool> {
 public:
  ~HostPool();
  // A 64-byte-aligned block of at least `bytes`, owned by the returned pointer (returned to the pool when
  // the last copy goes, even after the backend itself is gone).
  std::shared_ptr<void> allocate(size_t bytes);

 private:
  BlockCache cache_;
};

}  // namespace moert
