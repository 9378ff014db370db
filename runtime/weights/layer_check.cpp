#include "weights/layer_check.h"

#include <cstdlib>
#include <set>

#include "util/error.h"

namespace moert {

void check_layer_count(const WeightStore& store, int64_t hidden_layers, int64_t nextn_layers,
                       const std::string& config_path) {
  static const std::string kPrefix = "model.layers.";
  std::set<int64_t> present;
  for (const auto& [name, info] : store.tensors_by_name()) {
    if (name.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    char* end = nullptr;
    const long long i = std::strtoll(name.c_str() + kPrefix.size(), &end, 10);
    if (end != name.c_str() + kPrefix.size() && *end == '.' && i >= 0) present.insert(i);
  }
  const int64_t want = hidden_layers + nextn_layers;
  int64_t missing = -1;
  for (int64_t i = 0; i < want && missing < 0; ++i)
    if (!present.count(i)) missing = i;
  const int64_t extra = !present.empty() && *present.rbegin() >= want ? *present.rbegin() : -1;
  if (missing < 0 && extra < 0) return;
  std::string found = present.empty() ? "no layers"
                                      : "layers " + std::to_string(*present.begin()) + ".." +
                                            std::to_string(*present.rbegin()) + " (" +
                                            std::to_string(present.size()) + " of them)";
  fail(ErrorCode::kFormat, config_path + ": num_hidden_layers " + std::to_string(hidden_layers) +
                               " + num_nextn_predict_layers " + std::to_string(nextn_layers) + " = " +
                               std::to_string(want) + " layers, but the shards in " + store.dir() + " hold " +
                               found +
                               (missing >= 0 ? "; layer " + std::to_string(missing) + " is missing"
                                             : "; layer " + std::to_string(extra) + " is beyond the config"));
}

}  // namespace moert
