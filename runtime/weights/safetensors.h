// The safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and [begin, end) byte range in the data section, then the data. Parsing validates everything a
// malformed or truncated file could get wrong; every error names the file and the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "weights/mapped_file.h"

namespace moert {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping
  size_t nbytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

// Parses a safetensors image in memory (`bytes`, `size`); `source` names it in errors. The result points
// into `bytes`, which must outlive it. Throws Error(kFormat).
std::map<std::string, TensorInfo> parse_safetensors(const uint8_t* bytes, size_t size,
                                                    const std::string& source);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorInfo> tensors_;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace moert
