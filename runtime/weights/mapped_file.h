// A read-only memory mapping of a whole file (RAII). Checkpoint bytes are read in place, never copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moert {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error(kIo) naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moert
