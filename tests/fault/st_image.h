// Test helpers for the fault suites: build safetensors images byte by byte (8-byte little-endian header
// length + JSON header + data), read a shard back into an editable list of tensors, and copy a fixture
// checkpoint into a private temporary directory that a test may corrupt. Header-only and independent of
// the moert runtime, so the C-API suite (linked only against the shared library) can use it too.
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moert_test {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

inline std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("test helper: cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("test helper: cannot write " + p.string());
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A raw image: `header_len` (as written in the first 8 bytes) need not match the header's size.
inline std::string st_raw(uint64_t header_len, const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header_len >> (8 * i)) & 0xff);
  return out + header + data;
}

// A well-formed prefix: the header's true length.
inline std::string st_image(const std::string& header, const std::string& data) {
  return st_raw(header.size(), header, data);
}

struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;
  // Written instead of the computed [begin, end) when set (to build out-of-range or overlapping entries).
  std::vector<uint64_t> offsets_override;
};
using StTensors = std::vector<StTensor>;

inline size_t dtype_bytes(const std::string& d) {
  if (d == "F32" || d == "I32") return 4;
  if (d == "F16" || d == "BF16") return 2;
  if (d == "I64" || d == "F64") return 8;
  return 1;
}

// Lays the tensors out back to back in the given order, with a __metadata__ entry as torch writes.
inline std::string st_build(const StTensors& ts, bool metadata = true) {
  json h = json::object();
  if (metadata) h["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& t : ts) {
    uint64_t b = data.size();
    data += t.data;
    json e = {{"dtype", t.dtype}, {"shape", t.shape}};
    if (t.offsets_override.empty())
      e["data_offsets"] = {b, static_cast<uint64_t>(data.size())};
    else
      e["data_offsets"] = t.offsets_override;
    h[t.name] = e;
  }
  return st_image(h.dump(), data);
}

// A tensor of `dtype` and `shape` whose bytes are a simple pattern.
inline StTensor st_tensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape) {
  size_t n = dtype_bytes(dtype);
  for (auto d : shape) n *= static_cast<size_t>(d);
  std::string data(n, '\0');
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i * 7 + 1);
  return {name, dtype, std::move(shape), std::move(data), {}};
}

// Reads a (valid) shard into tensors ordered by offset.
inline StTensors st_read(const fs::path& p) {
  std::string bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  json h = json::parse(bytes.substr(8, n));
  std::vector<std::pair<uint64_t, StTensor>> v;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& e = it.value();
    uint64_t b = e["data_offsets"][0], en = e["data_offsets"][1];
    v.push_back({b,
                 {it.key(),
                  e["dtype"],
                  e["shape"].get<std::vector<int64_t>>(),
                  bytes.substr(8 + n + b, en - b),
                  {}}});
  }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  StTensors out;
  for (auto& [off, t] : v) out.push_back(std::move(t));
  return out;
}

inline StTensor* st_find(StTensors& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

// A private directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    static std::mt19937_64 rng(std::random_device{}());
    for (int attempt = 0; attempt < 100; ++attempt) {
      fs::path p = fs::temp_directory_path() /
                   ("moert-fault-" + std::to_string(::getpid()) + "-" + std::to_string(rng() % 1000000000));
      if (fs::create_directory(p)) {
        path_ = p;
        return;
      }
    }
    throw std::runtime_error("test helper: cannot create a temp dir");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// Copies the checkpoint files of fixture `src` (config, index, shards) into `dst`, writable.
inline void copy_checkpoint(const fs::path& src, const fs::path& dst) {
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("reference", 0) == 0) continue;  // golden data: not part of the checkpoint
    fs::copy_file(e.path(), dst / name, fs::copy_options::overwrite_existing);
    fs::permissions(dst / name, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  }
}

inline json read_json(const fs::path& p) {
  return json::parse(read_bytes(p));
}

// Replaces `p` with a FIFO (which blocks open() for reading until a writer comes).
inline void make_fifo_at(const fs::path& p) {
  fs::remove(p);
  if (::mkfifo(p.c_str(), 0600) != 0) throw std::runtime_error("test helper: mkfifo " + p.string());
}
inline void write_json(const fs::path& p, const json& j) {
  write_bytes(p, j.dump(2));
}

}  // namespace moert_test
