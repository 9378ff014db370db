// The two-microbatch overlap (DeepSeek-V3's, as SGLang's two-batch overlap does it): the batch's rows are
// cut in two halves A = [0, S) and B = [S, T) (a sequence may straddle the cut: its B part then attends
// after its A part, whose cache rows the same layer wrote just before), and their layers are interleaved
// so that while one half's dispatch or combine is in flight, the other computes. Per MoE layer i:
//
//   A: attention(i), route, start dispatch A(i)         | in flight: combine B(i-1)
//   B: finish combine (i-1)                             | dispatch A(i)
//   B: attention(i), route, start dispatch B(i)         | dispatch A(i)
//   A: shared experts; wait dispatch A(i), local experts, start combine A(i)   | dispatch B(i)
//   B: shared experts; wait dispatch B(i), local experts, start combine B(i)   | combine A(i)
//   A: wait combine A(i), out = routed + shared        | combine B(i)
//
// The exchanges start in the same order on every rank (dispatch A, dispatch B, combine A, combine B per
// layer), which is what keeps them matched; a rank with an empty half exchanges empty messages. Dense
// layers have no exchange: both halves run them in turn. Each half's rows go through the same ops as in
// the one-batch forward, with fewer rows per call (see tests/ep for what that changes numerically).
#include <algorithm>

#include "model/deepseek_network.h"
#include "util/error.h"

namespace moert {

struct DeepseekNetwork::Microbatch {
  const BatchPart* part = nullptr;
  Tensor x;  // the half's row slice of the batch's (default, 0 rows, when the half is empty)
  Tensor xn, y, shared, ids, weights;
  std::unique_ptr<MoeExchange> ex;
  int64_t rows() const { return x.rows; }
};

void DeepseekNetwork::run_layers_two_microbatches(Tensor& x, const StepBatch& batch) {
  MoeExpertsHook& hook = *opts_.moe_hook;
  Backend& b = backend_;
  const ActMode mode = opts_.act_mode;
  const int64_t H = cfg_.hidden_size;
  Microbatch mb[2];
  if (batch.tokens() > 0)
    for (int i = 0; i < 2; ++i) {
      mb[i].part = &batch.half(i);
      if (mb[i].part->rows > 0) mb[i].x = x.slice_rows(mb[i].part->row0, mb[i].part->rows);
    }

  // Attention, then the MLP of a dense layer, or the router and the dispatch of an MoE layer.
  auto begin_layer = [&](Microbatch& m, const LayerWeights& L, int64_t slot) {
    if (m.rows()) {
      m.xn = b.empty(b.act_dtype(), m.rows(), H);  // y and shared: F32, as decoder_layer's
      m.y = b.empty(DType::kF32, m.rows(), H);
      attention_block(L, slot, m.x, m.xn, m.y, *m.part);
      if (!L.moe) {
        ffn(L.dense, m.xn, m.y);
        b.add(m.y, m.x);
        return;
      }
      route(L, m.xn, m.ids, m.weights);
    } else if (!L.moe) {
      return;
    }
    m.ex = hook.begin(slot, L, m.xn, m.ids, m.weights, mode);
  };
  auto shared_and_compute = [&](Microbatch& m, const LayerWeights& L) {
    if (m.rows() && L.has_shared) {
      m.shared = b.empty(DType::kF32, m.rows(), H);
      ffn(L.shared, m.xn, m.shared);
    }
    hook.compute(*m.ex);
  };
  auto finish_layer = [&](Microbatch& m, const LayerWeights& L) {
    hook.finish(*m.ex, m.y);
    m.ex.reset();
    if (!m.rows()) return;
    if (L.has_shared) b.add(m.shared, m.y);
    b.add(m.y, m.x);
  };

  Microbatch &A = mb[0], &B = mb[1];
  try {
    const LayerWeights* b_open = nullptr;  // B's MoE layer whose combine is still in flight
    for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
      const LayerWeights& L = w_.layers[i];
      if (!L.moe) {
        if (b_open) finish_layer(B, *b_open);
        b_open = nullptr;
        begin_layer(A, L, i);
        begin_layer(B, L, i);
        continue;
      }
      begin_layer(A, L, i);
      if (b_open) finish_layer(B, *b_open);
      begin_layer(B, L, i);
      shared_and_compute(A, L);
      shared_and_compute(B, L);
      finish_layer(A, L);
      b_open = &L;
    }
    if (b_open) finish_layer(B, *b_open);
  } catch (const std::exception& e) {
    // Exchanges may be in flight that the peers will never complete: fail the group now.
    hook.abandon(e.what());
    throw;
  }
}

}  // namespace moert
