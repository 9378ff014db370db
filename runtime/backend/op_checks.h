// The vocabulary of the Backend ops' argument checks (backend.cpp): one OpCheck per op call, one line per
// argument. A failed check throws Error(kInternal) whose message names the op and the argument, e.g.
// "backend op silu_mul: out is F32 [3, 8], expected 4 rows". Only what is cheap and host-side is checked:
// shapes, dtypes, devices, layouts, aliasing; never the contents of device memory.
#pragma once
#include <cstdint>
#include <string>

#include "backend/tensor.h"

namespace moert {

class OpCheck {
 public:
  static constexpr int64_t kAny = -1;  // a dimension any size passes

  // bf16_activations: the backend has bf16 kernels (Backend::supports_bf16_activations), so act() passes
  // BF16.
  OpCheck(const char* op, DeviceKind device, bool bf16_activations = false)
      : op_(op), device_(device), bf16_(bf16_activations) {}

  // A tensor of `dtype` [rows, cols] on the backend's device, rows ld apart (ld >= cols). Dtype, device and
  // layout are checked only when it holds elements (an empty half-batch passes a default Tensor).
  const OpCheck& tensor(const char* arg, const Tensor& t, DType dtype, int64_t rows = kAny,
                        int64_t cols = kAny) const;
  const OpCheck& f32(const char* arg, const Tensor& t, int64_t rows = kAny, int64_t cols = kAny) const {
    return tensor(arg, t, DType::kF32, rows, cols);
  }
  // An activation: as tensor() of F32, or of BF16 where the backend has bf16 kernels.
  const OpCheck& act(const char* arg, const Tensor& t, int64_t rows = kAny, int64_t cols = kAny) const;
  // `t` has `ref`'s dtype (the op's kernel takes one element type for both); passes when either is empty.
  const OpCheck& same_dtype(const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref) const;
  // A packed I32 column [rows, 1] (the kernels read it as a plain array).
  const OpCheck& index(const char* arg, const Tensor& t, int64_t rows = kAny) const;
  // A row-packed tensor (ld == cols): the kernels that read or write it as [rows * cols].
  const OpCheck& packed(const char* arg, const Tensor& t) const;
  // A weight in a type the GEMMs read (F32, BF16, F16, F8E4M3; FP8 with its block scales), [n, k].
  const OpCheck& weight(const char* arg, const Tensor& w, int64_t n = kAny, int64_t k = kAny) const;
  const OpCheck& weight(const char* arg, const WeightMatrix& w, int64_t n = kAny, int64_t k = kAny) const;
  // Two tensors whose memory must not overlap (an output the op writes while it still reads the input).
  const OpCheck& disjoint(const char* a_arg, const Tensor& a, const char* b_arg, const Tensor& b) const;
  // Any other condition; `what` (a literal: nothing is built unless it fails) says what is wrong.
  const OpCheck& that(bool ok, const char* arg, const char* what) const {
    if (!ok) fail(arg, what);
    return *this;
  }

  // Throws Error(kInternal): "backend op <op>: <arg> <what>". Callers build `what` only once a check failed.
  [[noreturn]] void fail(const char* arg, const std::string& what) const;

 private:
  const char* op_;
  DeviceKind device_;
  bool bf16_;
};

// "F32 [3, 8]".
std::string describe(const Tensor& t);

}  // namespace moert
