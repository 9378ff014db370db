#include "backend/op_checks.h"

#include "util/error.h"

namespace moert {
namespace {

const char* device_name(DeviceKind d) {
  return d == DeviceKind::kCpu ? "cpu" : "cuda";
}

bool holds_elements(const Tensor& t) {
  return t.rows > 0 && t.cols > 0;
}

// One past a view's last element: two views overlap when each starts before the other ends.
const uint8_t* view_end(const Tensor& t) {
  return static_cast<const uint8_t*>(t.data) + ((t.rows - 1) * t.ld + t.cols) * dtype_size(t.dtype);
}

}  // namespace

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype)) + " [" + std::to_string(t.rows) + ", " + std::to_string(t.cols) +
         "]";
}

void OpCheck::fail(const char* arg, const std::string& what) const {
  ::moert::fail(ErrorCode::kInternal, std::string("backend op ") + op_ + ": " + arg + " " + what);
}

const OpCheck& OpCheck::tensor(const char* arg, const Tensor& t, DType dtype, int64_t rows,
                               int64_t cols) const {
  if (t.rows < 0 || t.cols < 0) fail(arg, "has a negative shape " + describe(t));
  if (rows != kAny && t.rows != rows)
    fail(arg, "is " + describe(t) + ", expected " + std::to_string(rows) + " rows");
  if (cols != kAny && t.cols != cols)
    fail(arg, "is " + describe(t) + ", expected " + std::to_string(cols) + " columns");
  if (!holds_elements(t)) return *this;
  if (t.dtype != dtype) fail(arg, "is " + describe(t) + ", expected " + dtype_name(dtype));
  if (!t.data) fail(arg, "is " + describe(t) + " without memory");
  if (t.device != device_)
    fail(arg, std::string("is in ") + device_name(t.device) + " memory, expected " + device_name(device_));
  if (t.rows > 1 && t.ld < t.cols)
    fail(arg, "is " + describe(t) + " with row stride " + std::to_string(t.ld) + " < its columns");
  return *this;
}

const OpCheck& OpCheck::act(const char* arg, const Tensor& t, int64_t rows, int64_t cols) const {
  if (bf16_ && holds_elements(t) && t.dtype != DType::kF32 && t.dtype != DType::kBF16)
    fail(arg, "is " + describe(t) + ", expected F32 or BF16");
  return tensor(arg, t, bf16_ && holds_elements(t) && t.dtype == DType::kBF16 ? DType::kBF16 : DType::kF32,
                rows, cols);
}

const OpCheck& OpCheck::same_dtype(const char* arg, const Tensor& t, const char* ref_arg,
                                   const Tensor& ref) const {
  if (holds_elements(t) && holds_elements(ref) && t.dtype != ref.dtype)
    fail(arg, "is " + describe(t) + ", " + ref_arg + " " + describe(ref) +
                  ": this op's kernels take one element type for both");
  return *this;
}

const OpCheck& OpCheck::index(const char* arg, const Tensor& t, int64_t rows) const {
  tensor(arg, t, DType::kI32, rows, 1);
  if (t.rows > 1 && t.ld != 1)
    fail(arg,
         "is " + describe(t) + " with row stride " + std::to_string(t.ld) + ", expected a packed column");
  return *this;
}

const OpCheck& OpCheck::packed(const char* arg, const Tensor& t) const {
  if (t.rows > 1 && t.ld != t.cols)
    fail(arg, "is " + describe(t) + " with row stride " + std::to_string(t.ld) + ", expected packed rows");
  return *this;
}

const OpCheck& OpCheck::weight(const char* arg, const Tensor& w, int64_t n, int64_t k) const {
  const DType d = w.dtype;
  if (d != DType::kF32 && d != DType::kBF16 && d != DType::kF16 && d != DType::kF8E4M3)
    fail(arg, std::string("has dtype ") + dtype_name(d) + ", not a weight type (F32, BF16, F16, F8_E4M3)");
  return tensor(arg, w, d, n, k);
}

const OpCheck& OpCheck::weight(const char* arg, const WeightMatrix& w, int64_t n, int64_t k) const {
  if (w.q4()) {
    // moert_q4: U8 codes [n, k / 2] with F16 scales and offsets [n, k / group] (docs/DESIGN.md, "Weights").
    if (w.q4_group != 32 && w.q4_group != 64 && w.q4_group != 128)
      fail(arg, "is moert_q4 with group " + std::to_string(w.q4_group) + ", not 32, 64 or 128");
    const int64_t cols = k == kAny ? w.k() : k;  // kAny: the caller checks no width
    if (cols % w.q4_group)
      fail(arg, "is moert_q4 with " + std::to_string(cols) + " columns: not whole groups");
    tensor(arg, w.w, DType::kU8, n, cols / 2);
    if (holds_elements(w.w)) {
      tensor(arg, w.scale, DType::kF16, w.n(), cols / w.q4_group);
      tensor(arg, w.min, DType::kF16, w.n(), cols / w.q4_group);
    }
    return *this;
  }
  weight(arg, w.w, n, k);
  if (w.fp8() && holds_elements(w.w)) {
    if (w.scale.empty()) fail(arg, "is FP8 without its block scales");
    tensor(arg, w.scale, DType::kF32);
    const int64_t scale_rows = (w.row0 + w.n() + 127) / 128, scale_cols = (w.k() + 127) / 128;
    if (w.scale.rows < scale_rows || w.scale.cols < scale_cols)
      fail(arg, "has block scales " + describe(w.scale) + ", expected at least [" +
                    std::to_string(scale_rows) + ", " + std::to_string(scale_cols) + "]");
  }
  return *this;
}

const OpCheck& OpCheck::disjoint(const char* a_arg, const Tensor& a, const char* b_arg,
                                 const Tensor& b) const {
  if (!holds_elements(a) || !holds_elements(b) || !a.data || !b.data) return *this;
  const auto* a0 = static_cast<const uint8_t*>(a.data);
  const auto* b0 = static_cast<const uint8_t*>(b.data);
  if (a0 < view_end(b) && b0 < view_end(a)) fail(a_arg, std::string("overlaps ") + b_arg + " in memory");
  return *this;
}

}  // namespace moert
