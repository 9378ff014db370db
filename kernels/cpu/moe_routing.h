// MoE router: from router logits (fp32) to each token's top-k experts and their weights, exactly as
// DeepSeek-V3 (sigmoid + correction bias for the choice, group score = sum of the top-2 in a group) and
// DeepSeek-V2 (softmax; greedy, or group_limited_greedy with a group's score = its best expert) define it.
#pragma once
#include <cstdint>

#include "common/routing_params.h"

namespace moert::kernels {

// logits: [tokens, experts]; writes ids [tokens, top_k] and weights [tokens, top_k]. bias: the
// e_score_correction_bias [experts], added for the choice only (may be null).
void route_topk(const float* logits, int64_t tokens, const RoutingParams& p, const float* bias, int32_t* ids,
                float* weights);

}  // namespace moert::kernels
