// The MoE router's parameters, exactly as DeepSeek-V3 (sigmoid scores, + e_score_correction_bias for the
// choice, group score = sum of the group's top two, normalised, times routed_scaling_factor) and
// DeepSeek-V2 (softmax; greedy, or group-limited greedy with a group's best as its score; the routed scale
// only without normalisation) define them. One struct: the config derives it (ModelConfig::routing), the
// model keeps it, Backend::moe_route checks it and both backends' kernels read it. A leaf header (no
// runtime or CUDA types, C++17 for nvcc) under kernels/, so the kernels need nothing of the runtime.
#pragma once
#include <cstdint>

namespace moert {

struct RoutingParams {
  int64_t experts = 0, top_k = 0;
  int64_t n_group = 1, topk_group = 1;  // experts in n_group equal groups; the best topk_group are kept
  bool sigmoid = true;                  // false: softmax
  bool group_sum_top2 = true;           // a group's score: its top two summed (noaux_tc); false: its best
  bool grouped = true;                  // false: plain greedy top-k over all experts
  bool normalize = true;                // divide the top-k weights by their sum (+1e-20)
  float routed_scale = 1.0f;            // applied after normalisation (V3); V2 applies it only without
  bool scale_only_unnormalized = false;
};

}  // namespace moert
