// The model configuration as moert understands it, parsed from a Hugging Face config.json of
// DeepSeek-V2 / V2-Lite / V3 / R1, Moonlight or Kimi-K2. Every value the math depends on is explicit here;
// anything the runtime does not implement is rejected at parse time, naming the field and its value.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/routing_params.h"

namespace moert {

enum class ScoringFunc { kSoftmax, kSigmoid };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

struct RopeScaling {
  bool yarn = false;            // false: plain RoPE
  double factor = 1.0;          // for the frequencies: max_position_embeddings / original when given
  double config_factor = 1.0;   // rope_scaling.factor as written (the softmax mscale uses it)
  double mscale = 1.0;          // 0 = absent
  double mscale_all_dim = 0.0;  // 0 = absent
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int64_t original_max_position_embeddings = 0;
  double attention_factor = 0.0;  // 0 = derived from mscale / mscale_all_dim
  bool truncate = true;
};

struct QuantConfig {
  bool fp8 = false;  // e4m3 weights with block scales
  int block_n = 128;
  int block_k = 128;
  // moert_q4 (moert quantize, docs/DESIGN.md "Weights"): the routed and shared experts' linear weights are
  // 4-bit with an fp16 scale and offset per group of this many columns (32, 64 or 128); the other weights
  // are as `fp8` says (the original checkpoint's quantization_config, kept as "base"). 0: not moert_q4.
  int64_t expert_q4_group = 0;
};

struct ModelConfig {
  std::string model_type;  // "deepseek_v2" | "deepseek_v3" | "kimi_k2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t moe_intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t q_lora_rank = 0;  // 0 = no q LoRA (q_proj)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  TopkMethod topk_method = TopkMethod::kGreedy;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool rope_interleave = true;
  int64_t max_position_embeddings = 0;
  RopeScaling rope_scaling;
  QuantConfig quant;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;           // the first of eos_token_ids, -1 when none
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id: one id or a list

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  // Per-token latent KV-cache width: the compressed latent plus the shared rope key.
  int64_t kv_cache_width() const { return kv_lora_rank + qk_rope_head_dim; }
  // Softmax scale of the attention: qk_head_dim^-0.5, times mscale^2 under YaRN (DeepSeek-V3 convention).
  double softmax_scale() const;
  // RoPE cos/sin multiplier from YaRN (1 unless mscale differs from mscale_all_dim).
  double rope_attention_factor() const;
  // The router's parameters (scoring, grouping, normalisation, routed scale) this config's model type means.
  RoutingParams routing() const;
};

// Parses and validates config.json text; `source` names the file in error messages.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& model_dir);
// The config as moert understood it, as JSON (for `moert info` and moert_model_config_json).
std::string model_config_to_json(const ModelConfig& c);

}  // namespace moert
