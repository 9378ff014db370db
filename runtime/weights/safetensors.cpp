#include "weights/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace moert {
namespace {

bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"F8_E4M3", DType::kF8E4M3},
      {"I32", DType::kI32}, {"I64", DType::kI64}, {"U8", DType::kU8},
  };
  for (auto& [name, t] : kNames)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
}

}  // namespace

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::map<std::string, TensorInfo> parse_safetensors(const uint8_t* bytes, size_t size,
                                                    const std::string& src) {
  using json = nlohmann::json;
  if (size < 8)
    fail(ErrorCode::kFormat, src + ": too short for a safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8)
    fail(ErrorCode::kFormat, src + ": header length " + std::to_string(header_len) +
                                 " runs past the end of the file (" + std::to_string(size) +
                                 " bytes): truncated or not a safetensors file");
  if (header_len > 100u * 1024 * 1024) fail(ErrorCode::kFormat, src + ": header larger than 100 MB");
  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(bytes + 8),
                         reinterpret_cast<const char*>(bytes + 8 + header_len));
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, src + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) fail(ErrorCode::kFormat, src + ": header must be a JSON object");
  const uint8_t* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  std::map<std::string, TensorInfo> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<const std::string*> range_names;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const json& e = it.value();
    auto where = src + ": tensor '" + name + "'";
    if (!e.is_object()) fail(ErrorCode::kFormat, where + ": entry must be an object");
    auto dt = e.find("dtype"), sh = e.find("shape"), off = e.find("data_offsets");
    if (dt == e.end() || !dt->is_string()) fail(ErrorCode::kFormat, where + ": missing or invalid dtype");
    TensorInfo info;
    info.name = name;
    if (!parse_dtype(dt->get<std::string>(), &info.dtype))
      fail(ErrorCode::kFormat, where + ": unsupported dtype " + dt->dump());
    if (sh == e.end() || !sh->is_array()) fail(ErrorCode::kFormat, where + ": missing or invalid shape");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        fail(ErrorCode::kFormat,
             where + ": shape " + sh->dump() + " has a non-integer or negative dimension");
      uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v && numel > std::numeric_limits<uint64_t>::max() / v / 8))
        fail(ErrorCode::kFormat, where + ": shape " + sh->dump() + " is implausibly large");
      numel *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(ErrorCode::kFormat, where + ": missing or invalid data_offsets");
    uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
    if (b > en)
      fail(ErrorCode::kFormat,
           where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] are reversed");
    if (en > data_size)
      fail(ErrorCode::kFormat, where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                                   "] run past the end of the data (" + std::to_string(data_size) +
                                   " bytes): the file is truncated or corrupt");
    uint64_t expect = numel * dtype_size(info.dtype);
    if (en - b != expect)
      fail(ErrorCode::kFormat, where + ": holds " + std::to_string(en - b) + " bytes but dtype " +
                                   dtype_name(info.dtype) + " x shape " + shape_to_string(info.shape) +
                                   " needs " + std::to_string(expect));
    info.data = data + b;
    info.nbytes = static_cast<size_t>(en - b);
    out.emplace(name, std::move(info));
    if (en > b) {  // zero-size tensors own no bytes (and must not hide an overlap from the check below)
      ranges.emplace_back(b, en);
      range_names.push_back(&out.find(name)->first);
    }
  }
  // No two tensors may share bytes.
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    auto& prev = ranges[order[i - 1]];
    auto& cur = ranges[order[i]];
    if (cur.first < prev.second)
      fail(ErrorCode::kFormat, src + ": tensors '" + *range_names[order[i - 1]] + "' and '" +
                                   *range_names[order[i]] + "' overlap in the data section");
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  tensors_ = parse_safetensors(file_->data(), file_->size(), path);
}

}  // namespace moert
