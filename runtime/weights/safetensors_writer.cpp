#include "weights/safetensors_writer.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace moert {

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (static_cast<size_t>(numel) * dtype_size(dtype) != bytes.size())
    fail(ErrorCode::kInternal, "SafetensorsWriter: tensor '" + name + "' has the wrong number of bytes");
  entries_.push_back({name, dtype, std::move(shape), std::move(bytes)});
}

size_t SafetensorsWriter::total_bytes() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.bytes.size();
  return n;
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> n;
  for (const Entry& e : entries_) n.push_back(e.name);
  return n;
}

void SafetensorsWriter::write(const std::string& path) const {
  std::vector<const Entry*> order;
  for (const Entry& e : entries_) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->name < b->name; });
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const Entry* e : order) {
    header[e->name] = {{"dtype", dtype_name(e->dtype)},
                       {"shape", e->shape},
                       {"data_offsets", {offset, offset + e->bytes.size()}}};
    offset += e->bytes.size();
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h.push_back(' ');  // align the data section, as the Python writer does
  std::ofstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, path + ": cannot create");
  uint64_t n = h.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const Entry* e : order)
    f.write(reinterpret_cast<const char*>(e->bytes.data()), static_cast<std::streamsize>(e->bytes.size()));
  if (!f) fail(ErrorCode::kIo, path + ": write failed");
}

}  // namespace moert
