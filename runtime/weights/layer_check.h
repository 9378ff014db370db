// config.json's layer counts against the shards: a checkpoint whose config names fewer layers than its
// shards hold would load and run a truncated model without a word; more layers would fail later on the
// first missing tensor with a less useful message.
#pragma once
#include <cstdint>
#include <string>

#include "weights/weight_store.h"

namespace moert {

// The shards must hold model.layers.0 .. model.layers.{hidden_layers + nextn_layers - 1} and no other
// layer. Error(kFormat) naming config_path, both fields and the layers found.
void check_layer_count(const WeightStore& store, int64_t hidden_layers, int64_t nextn_layers,
                       const std::string& config_path);

}  // namespace moert
