// The DeepSeek weights bound to a backend: every tensor the graph needs, checked for presence, dtype and
// shape against the config when the model loads (so a bad checkpoint fails at load, naming the tensor).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "weights/weight_store.h"

namespace moert {

struct AttentionWeights {
  WeightMatrix q_a, q_b, q_proj;  // q LoRA (q_a, q_b) or q_proj
  Tensor q_a_norm;
  WeightMatrix kv_a;  // [kv_lora + rope, hidden]
  Tensor kv_a_norm;
  WeightMatrix kv_b;  // [heads * (nope + v), kv_lora]
  WeightMatrix o;     // [hidden, heads * v]
};

struct LayerWeights {
  Tensor input_norm, post_attention_norm;
  AttentionWeights attn;
  bool moe = false;
  ExpertWeights dense;  // dense MLP (layers before first_k_dense_replace)
  WeightMatrix router;  // [experts, hidden]
  Tensor router_bias;   // e_score_correction_bias [1, experts] (V3) or empty
  std::vector<ExpertWeights> experts;
  ExpertSet
      routed;  // the grouped ops' view of `experts` (set by the model: DeepseekNetwork::prepare_expert_sets)
  bool has_shared = false;
  ExpertWeights shared;
};

struct MtpWeights {
  LayerWeights layer;
  Tensor enorm, hnorm;
  WeightMatrix eh_proj;  // [hidden, 2 * hidden]
  Tensor head_norm;
  WeightMatrix head;  // [vocab, hidden]
  Tensor embed;       // its own embed_tokens when the checkpoint has one, else the model's
};

struct ModelWeights {
  Tensor embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  Tensor final_norm;
  WeightMatrix lm_head;
  std::vector<MtpWeights> mtp;
  int64_t parameter_count = 0;  // elements in the tensors bound (scales excluded)
};

// Which routed experts a process binds (expert parallelism, runtime/ep): keep(layer, expert). Layer is the
// checkpoint's layer index (MTP layers follow the main ones). An expert not kept stays unbound (its
// ExpertWeights empty: gate.w.empty()) and is neither read nor validated here; another rank holds it.
using ExpertFilter = std::function<bool(int64_t layer, int64_t expert)>;

// Without a filter (the default) every expert is bound.
ModelWeights bind_model_weights(const ModelConfig& cfg, const WeightStore& store, Backend& backend,
                                bool load_mtp, const ExpertFilter& keep = nullptr);

// Re-binds the routed experts of one MoE layer (`layer` as above) after a change of placement: the experts
// `keep` accepts are bound, the others released.
void rebind_layer_experts(const ModelConfig& cfg, const WeightStore& store, Backend& backend, int64_t layer,
                          LayerWeights& L, const ExpertFilter& keep);

}  // namespace moert
