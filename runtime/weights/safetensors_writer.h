// Writes safetensors files: tensors are added with their bytes, then written with a sorted JSON header.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace moert {

class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  // Writes the file; throws Error(kIo) naming the path on failure.
  void write(const std::string& path) const;
  size_t total_bytes() const;
  std::vector<std::string> names() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> entries_;
};

}  // namespace moert
