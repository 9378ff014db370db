// Per-thread scratch memory for the kernels: 64-byte aligned, grown on demand and never shrunk, so the
// hot paths do not allocate once warm.
#pragma once
#include <cstddef>
#include <new>

namespace moert::kernels {

inline float* tls_scratch(int slot, size_t floats) {
  struct Buf {
    float* p = nullptr;
    size_t cap = 0;
    ~Buf() { ::operator delete(p, std::align_val_t(64)); }
  };
  thread_local Buf bufs[8];
  Buf& b = bufs[slot];
  if (b.cap < floats) {
    ::operator delete(b.p, std::align_val_t(64));
    b.p = nullptr;
    const size_t cap = floats + floats / 2 + 64;
    b.p = static_cast<float*>(::operator new(cap * sizeof(float), std::align_val_t(64)));
    b.cap = cap;
  }
  return b.p;
}

}  // namespace moert::kernels
