#include "weights/weight_store.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_io.h"

namespace moert {

WeightStore::WeightStore(const std::string& model_dir) : dir_(model_dir) {
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  std::vector<std::string> shard_names;
  if (path_exists(index_path)) {
    const std::string text = read_regular_file(index_path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kFormat, index_path + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail(ErrorCode::kFormat, index_path + ": missing the \"weight_map\" object");
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        fail(ErrorCode::kFormat, index_path + ": weight_map entry '" + it.key() + "' is not a file name");
      std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file == ".." || file.empty())
        fail(ErrorCode::kFormat,
             index_path + ": weight_map entry '" + it.key() + "' names an invalid file '" + file + "'");
      weight_map[it.key()] = file;
      if (std::find(shard_names.begin(), shard_names.end(), file) == shard_names.end())
        shard_names.push_back(file);
    }
  } else if (path_exists(model_dir + "/model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    fail(ErrorCode::kIo, model_dir + ": no model.safetensors.index.json or model.safetensors");
  }
  for (size_t s = 0; s < shard_names.size(); ++s) {
    if (!weight_map.empty() && !path_exists(model_dir + "/" + shard_names[s])) {
      // Name a tensor the index places there, so the message says what the missing file was needed for.
      std::string example;
      for (const auto& [name, file] : weight_map)
        if (file == shard_names[s]) {
          example = name;
          break;
        }
      fail(ErrorCode::kIo, model_dir + "/" + shard_names[s] + ": shard file does not exist, but " +
                               index_path + " names it for tensor '" + example + "'");
    }
    shards_.push_back(std::make_unique<SafetensorsFile>(model_dir + "/" + shard_names[s]));
    for (const auto& [name, info] : shards_.back()->tensors()) {
      if (!weight_map.empty()) {
        auto w = weight_map.find(name);
        if (w == weight_map.end() || w->second != shard_names[s]) continue;  // index is the authority
      }
      if (index_.count(name))
        fail(ErrorCode::kFormat,
             shards_.back()->path() + ": tensor '" + name + "' also appears in " + file_of(name));
      index_.emplace(name, std::make_pair(&info, s));
    }
  }
  for (const auto& [name, file] : weight_map)
    if (!index_.count(name))
      fail(ErrorCode::kFormat, model_dir + "/" + file + ": tensor '" + name +
                                   "' is listed in model.safetensors.index.json but missing from the shard");
}

std::vector<std::pair<std::string, const TensorInfo*>> WeightStore::tensors_by_name() const {
  std::vector<std::pair<std::string, const TensorInfo*>> out;
  out.reserve(index_.size());
  for (const auto& [name, entry] : index_) out.emplace_back(name, entry.first);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

const TensorInfo* WeightStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.first;
}

std::string WeightStore::file_of(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? dir_ : shards_[it->second.second]->path();
}

const TensorInfo& WeightStore::require(const std::string& name, std::initializer_list<DType> dtypes,
                                       const std::vector<int64_t>& shape) const {
  const TensorInfo* t = find(name);
  if (!t) fail(ErrorCode::kFormat, dir_ + ": checkpoint is missing tensor '" + name + "'");
  bool ok = false;
  std::string want;
  for (DType d : dtypes) {
    ok |= d == t->dtype;
    want += (want.empty() ? "" : " or ") + std::string(dtype_name(d));
  }
  if (!ok)
    fail(ErrorCode::kFormat,
         file_of(name) + ": tensor '" + name + "' has dtype " + dtype_name(t->dtype) + ", expected " + want);
  if (t->shape != shape)
    fail(ErrorCode::kFormat, file_of(name) + ": tensor '" + name + "' has shape " +
                                 shape_to_string(t->shape) + ", expected " + shape_to_string(shape));
  return *t;
}

}  // namespace moert
