// Element types of tensors as stored in checkpoints, of the runtime's tensors and of the weights the kernels
// read: one enum for all three. A leaf header (no runtime or CUDA types, C++17 for nvcc) under kernels/, so
// the kernels use it without depending on the runtime, and the runtime reuses it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moert {

// kQ4 is a kernel weight view only (moert_q4 expert weights: 4-bit codes two per byte, with an fp16 scale and
// offset per group, docs/DESIGN.md "Weights"); in a checkpoint those tensors are U8 and F16.
enum class DType : uint8_t { kF32, kF16, kBF16, kF8E4M3, kI32, kI64, kU8, kQ4 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kBF16:
      return 2;
    case DType::kF8E4M3:
      return 1;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
    case DType::kU8:
      return 1;
    case DType::kQ4:
      return 0;  // half a byte: sized by its group layout instead
  }
  return 0;
}

// The safetensors spelling ("F8_E4M3", "BF16", ...).
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF8E4M3:
      return "F8_E4M3";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
    case DType::kQ4:
      return "Q4";
  }
  return "?";
}

}  // namespace moert
