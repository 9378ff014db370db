// A 2-D strided view of device or host memory, the unit the model graph passes to backend ops.
// Activations are row-major [rows, cols] with a row stride `ld`; per-head structure is implicit in the
// column layout (the op is told the head width). The model never touches `data` directly.
#pragma once
#include <cstdint>
#include <memory>

#include "common/dtype.h"

namespace moert {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct Tensor {
  DType dtype = DType::kF32;
  DeviceKind device = DeviceKind::kCpu;
  int64_t rows = 0, cols = 0, ld = 0;
  void* data = nullptr;
  std::shared_ptr<void> owner;  // keeps the memory alive (null for views of memory owned elsewhere)

  bool empty() const { return data == nullptr; }
  Tensor slice_cols(int64_t c0, int64_t n) const {
    Tensor t = *this;
    t.data = static_cast<uint8_t*>(data) + c0 * dtype_size(dtype);
    t.cols = n;
    return t;
  }
  Tensor slice_rows(int64_t r0, int64_t n) const {
    Tensor t = *this;
    t.data = static_cast<uint8_t*>(data) + r0 * ld * dtype_size(dtype);
    t.rows = n;
    return t;
  }
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

// A linear layer's weight [n, k] as stored (FP8 with its block scales, BF16, F32, or moert_q4's 4-bit
// codes), on the backend's device. row0 is this view's first row within the full weight's scale grid (a
// row slice, e.g. one head).
struct WeightMatrix {
  Tensor w;      // [n, k]; q4: U8 [n, k / 2], two codes per byte (docs/DESIGN.md, "Weights")
  Tensor scale;  // fp8: F32 [ceil(n_full / 128), ceil(k / 128)]; q4: F16 [n, k / q4_group]
  Tensor min;    // q4 only: F16 [n, k / q4_group], the group offsets
  int64_t row0 = 0;
  int64_t q4_group = 0;  // q4: columns per scale group (32, 64 or 128); 0 for every other type
  int64_t n() const { return w.rows; }
  int64_t k() const { return q4() ? 2 * w.cols : w.cols; }
  bool fp8() const { return w.dtype == DType::kF8E4M3; }
  bool q4() const { return q4_group > 0; }
  WeightMatrix rows(int64_t r, int64_t count) const {
    WeightMatrix m = *this;
    m.w = w.slice_rows(r, count);
    m.row0 = row0 + r;
    if (q4()) {  // per-row scales: sliced with the rows
      m.scale = scale.slice_rows(r, count);
      m.min = min.slice_rows(r, count);
    }
    return m;
  }
};

}  // namespace moert
