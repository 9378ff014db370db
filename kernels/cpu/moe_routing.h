// MoE router: from router logits (fp32) to each token's top-k experts and their weights, exactly as
// DeepSeek-V3 (sigmoid + correction bias for the choice, group score = sum of the top-2 in a group) and
// DeepSeek-V2 (softmax; greedy, or group_limited_greedy with a group's score = its best expert) define it.
#pragma once
#include <cstdint>

namespace moert::kernels {

struct RoutingParams {
  int64_t experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  bool sigmoid = true;         // false: softmax
  bool group_sum_top2 = true;  // noaux_tc group score; false: max (group_limited_greedy)
  bool grouped = true;         // false: plain greedy top-k
  bool normalize = true;       // divide the top-k weights by their sum (+1e-20)
  float routed_scale = 1.0f;   // applied after normalisation (V3); V2 applies it only without
  bool scale_only_unnormalized = false;
  const float* bias = nullptr;  // e_score_correction_bias, choice only (may be null)
};

// logits: [tokens, experts]; writes ids [tokens, top_k] and weights [tokens, top_k].
void route_topk(const float* logits, int64_t tokens, const RoutingParams& p, int32_t* ids, float* weights);

}  // namespace moert::kernels
