#include "model/moe_ffn.h"

namespace moert {

void grouped_expert_ffn(Backend& b, const ExpertSet& set, const MoeGrouping& g, const Tensor& xg, Tensor& yg,
                        ActMode mode) {
  if (g.rows == 0) return;
  int64_t inter = 0;
  for (const ExpertWeights* e : set.experts)
    if (e) inter = std::max(inter, e->gate.n());
  Tensor gate = b.empty(b.act_dtype(), g.rows, inter), up = b.empty(b.act_dtype(), g.rows, inter);
  b.moe_expert_linear(xg, g, set, ExpertProj::kGate, gate, mode);
  b.moe_expert_linear(xg, g, set, ExpertProj::kUp, up, mode);
  b.silu_mul(gate, up, gate);
  b.moe_expert_linear(gate, g, set, ExpertProj::kDown, yg, mode);
}

void routed_experts(Backend& b, const ExpertSet& set, const Tensor& x, const Tensor& ids,
                    const Tensor& weights, Tensor& out, ActMode mode) {
  if (x.rows == 0) return;
  MoeGrouping g;
  b.moe_group(ids, set, g);
  Tensor yg;
  if (g.rows > 0) {
    // The grouped rows in the activation dtype; `out` is what the caller gave (F32: the residual's
    // increment).
    Tensor xg = b.empty(b.act_dtype(), g.rows, x.cols);
    b.gather_rows(x, g.token, xg);
    yg = b.empty(b.act_dtype(), g.rows, x.cols);
    grouped_expert_ffn(b, set, g, xg, yg, mode);
  }
  b.moe_combine(yg, g.slot_row, weights, ids, out);
}

}  // namespace moert
