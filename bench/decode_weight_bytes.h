// The weight bytes one decode step reads, for the benches' memory floors.
#pragma once
#include <cmath>
#include <cstdlib>
#include <string>

#include "config/model_config.h"
#include "weights/weight_store.h"

namespace moert::bench {

// Bytes a decode step of `batch` sequences reads from the weights: every tensor but the embedding table and
// the MTP layers, with each MoE layer's routed experts counted by the share the batch touches under uniform
// routing, 1 - (1 - top_k / n_routed)^batch (top_k / n_routed for one token).
inline double decode_weight_bytes(const WeightStore& ws, const ModelConfig& cfg, int batch = 1) {
  const double touched =
      1.0 - std::pow(1.0 - static_cast<double>(cfg.num_experts_per_tok) / cfg.n_routed_experts, batch);
  double bytes = 0;
  for (const auto& [name, ti] : ws.tensors_by_name()) {
    if (name.find("embed_tokens") != std::string::npos) continue;
    const std::string pre = "model.layers.";
    if (name.rfind(pre, 0) == 0 && std::atoll(name.c_str() + pre.size()) >= cfg.num_hidden_layers) continue;
    double b = static_cast<double>(ti->nbytes);
    if (name.find(".mlp.experts.") != std::string::npos) b *= touched;
    bytes += b;
  }
  return bytes;
}

}  // namespace moert::bench
