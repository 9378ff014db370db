// The routed experts' FFN, written once over the backend's grouped MoE primitives: group the (token, slot)
// pairs by expert, gather their rows, gate/up GEMMs per expert, SiLU x up, down GEMM, and the weighted
// combine in the original token order. The model's MoE layers and expert parallelism's local experts both
// run through it.
#pragma once
#include "backend/backend.h"

namespace moert {

// yg [g.rows, hidden] = expert(xg) row by row, each grouped row through its own expert.
void grouped_expert_ffn(Backend& b, const ExpertSet& set, const MoeGrouping& g, const Tensor& xg, Tensor& yg,
                        ActMode mode);

// out [T, hidden] = sum over each token's top-k (ascending expert id) of weight * expert(x). ids, weights:
// [T, top_k]; experts not held in `set` contribute nothing.
void routed_experts(Backend& b, const ExpertSet& set, const Tensor& x, const Tensor& ids,
                    const Tensor& weights, Tensor& out, ActMode mode);

}  // namespace moert
