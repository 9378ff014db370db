// All tensors of a checkpoint directory: model.safetensors.index.json with its shards, or one
// model.safetensors. Shards stay memory-mapped for the life of the store.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "weights/safetensors.h"

namespace moert {

class WeightStore {
 public:
  explicit WeightStore(const std::string& model_dir);  // throws Error naming the file

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor, which must exist with one of `dtypes` and exactly `shape`; else Error(kFormat) naming the
  // file, the tensor, and what was expected.
  const TensorInfo& require(const std::string& name, std::initializer_list<DType> dtypes,
                            const std::vector<int64_t>& shape) const;
  const TensorInfo* find(const std::string& name) const;
  // The shard file holding `name` (for messages).
  std::string file_of(const std::string& name) const;
  size_t tensor_count() const { return index_.size(); }
  // Every tensor with its name, sorted by name (a stable order for scans and messages).
  std::vector<std::pair<std::string, const TensorInfo*>> tensors_by_name() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::unordered_map<std::string, std::pair<const TensorInfo*, size_t>> index_;  // name -> (info, shard)
};

}  // namespace moert
