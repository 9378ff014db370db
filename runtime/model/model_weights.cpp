#include "model/model_weights.h"

#include <cstring>

#include "util/error.h"

namespace moert {
namespace {

class Binder {
 public:
  Binder(const ModelConfig& c, const WeightStore& s, Backend& b, const ExpertFilter& keep = nullptr)
      : cfg_(c), store_(s), backend_(b), keep_(keep) {}

  // A norm or bias vector [n] (bf16/f32), as a [1, n] tensor.
  Tensor vec(const std::string& name, int64_t n) {
    const TensorInfo& t = store_.require(name, {DType::kBF16, DType::kF32, DType::kF16}, {n});
    count_ += n;
    return backend_.weight(t, 1, n);
  }

  Tensor matrix(const std::string& name, int64_t rows, int64_t cols) {
    const TensorInfo& t = store_.require(name, {DType::kBF16, DType::kF32, DType::kF16}, {rows, cols});
    count_ += rows * cols;
    return backend_.weight(t, rows, cols);
  }

  // A linear weight [n, k]: FP8 with `<name>_scale_inv` blocks when the checkpoint is quantised, else
  // bf16/f32.
  WeightMatrix linear(const std::string& name, int64_t n, int64_t k) {
    WeightMatrix m;
    const TensorInfo* t = store_.find(name);
    if (t && t->dtype == DType::kF8E4M3) {
      store_.require(name, {DType::kF8E4M3}, {n, k});
      const int64_t bn = (n + 127) / 128, bk = (k + 127) / 128;
      const TensorInfo& s = store_.require(name + "_scale_inv", {DType::kF32}, {bn, bk});
      m.w = backend_.weight(*t, n, k);
      m.scale = backend_.weight(s, bn, bk);
    } else {
      m.w = matrix(name, n, k);
      return m;
    }
    count_ += n * k;
    return m;
  }

  // A moert_q4 expert weight [n, k]: U8 codes [n, k / 2] with F16 `<name>_scale` and `<name>_min`
  // [n, k / group] (docs/DESIGN.md, "Weights").
  WeightMatrix q4_linear(const std::string& name, int64_t n, int64_t k) {
    const int64_t group = cfg_.quant.expert_q4_group;
    if (k % group != 0)
      fail(ErrorCode::kFormat, store_.file_of(name) + ": tensor '" + name + "' has " + std::to_string(k) +
                                   " columns, not a multiple of the moert_q4 group_size " +
                                   std::to_string(group));
    WeightMatrix m;
    m.w = backend_.weight(store_.require(name, {DType::kU8}, {n, k / 2}), n, k / 2);
    m.scale = backend_.weight(store_.require(name + "_scale", {DType::kF16}, {n, k / group}), n, k / group);
    m.min = backend_.weight(store_.require(name + "_min", {DType::kF16}, {n, k / group}), n, k / group);
    m.q4_group = group;
    count_ += n * k;
    return m;
  }

  // A gate/up/down MLP; `expert` (routed and shared experts): 4-bit in a moert_q4 checkpoint.
  ExpertWeights mlp(const std::string& p, int64_t inter, bool expert = false) {
    const int64_t h = cfg_.hidden_size;
    if (expert && cfg_.quant.expert_q4_group > 0)
      return {q4_linear(p + "gate_proj.weight", inter, h), q4_linear(p + "up_proj.weight", inter, h),
              q4_linear(p + "down_proj.weight", h, inter)};
    return {linear(p + "gate_proj.weight", inter, h), linear(p + "up_proj.weight", inter, h),
            linear(p + "down_proj.weight", h, inter)};
  }

  LayerWeights layer(int64_t i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t h = cfg_.hidden_size, heads = cfg_.num_attention_heads;
    LayerWeights L;
    L.input_norm = vec(p + "input_layernorm.weight", h);
    L.post_attention_norm = vec(p + "post_attention_layernorm.weight", h);
    AttentionWeights& a = L.attn;
    const std::string ap = p + "self_attn.";
    if (cfg_.q_lora_rank > 0) {
      a.q_a = linear(ap + "q_a_proj.weight", cfg_.q_lora_rank, h);
      a.q_a_norm = vec(ap + "q_a_layernorm.weight", cfg_.q_lora_rank);
      a.q_b = linear(ap + "q_b_proj.weight", heads * cfg_.qk_head_dim(), cfg_.q_lora_rank);
    } else {
      a.q_proj = linear(ap + "q_proj.weight", heads * cfg_.qk_head_dim(), h);
    }
    a.kv_a = linear(ap + "kv_a_proj_with_mqa.weight", cfg_.kv_lora_rank + cfg_.qk_rope_head_dim, h);
    a.kv_a_norm = vec(ap + "kv_a_layernorm.weight", cfg_.kv_lora_rank);
    a.kv_b =
        linear(ap + "kv_b_proj.weight", heads * (cfg_.qk_nope_head_dim + cfg_.v_head_dim), cfg_.kv_lora_rank);
    a.o = linear(ap + "o_proj.weight", h, heads * cfg_.v_head_dim);
    const std::string mp = p + "mlp.";
    L.moe = cfg_.is_moe_layer(i);
    if (!L.moe) {
      L.dense = mlp(mp, cfg_.intermediate_size);
      return L;
    }
    L.router = linear(mp + "gate.weight", cfg_.n_routed_experts, h);
    if (cfg_.topk_method == TopkMethod::kNoauxTc)
      L.router_bias = vec(mp + "gate.e_score_correction_bias", cfg_.n_routed_experts);
    experts(i, L);
    if (cfg_.n_shared_experts > 0) {
      L.has_shared = true;
      L.shared = mlp(mp + "shared_experts.", cfg_.moe_intermediate_size * cfg_.n_shared_experts, true);
    }
    return L;
  }

  // The routed experts of MoE layer i (all of them, or those keep_ accepts).
  void experts(int64_t i, LayerWeights& L) {
    const std::string mp = "model.layers." + std::to_string(i) + ".mlp.";
    L.experts.clear();
    L.experts.reserve(cfg_.n_routed_experts);
    for (int64_t e = 0; e < cfg_.n_routed_experts; ++e) {
      if (keep_ && !keep_(i, e)) {
        L.experts.emplace_back();
        continue;
      }
      L.experts.push_back(mlp(mp + "experts." + std::to_string(e) + ".", cfg_.moe_intermediate_size, true));
    }
  }

  int64_t count() const { return count_; }

 private:
  const ModelConfig& cfg_;
  const WeightStore& store_;
  Backend& backend_;
  ExpertFilter keep_;
  int64_t count_ = 0;
};

// True when both tensors exist with the same dtype, shape and bytes. DeepSeek-V3's checkpoints store the MTP
// layer's embedding and output head as copies of the model's (the module shares them, as SGLang binds
// it): one binding then serves both, which on a GPU saves two vocab x hidden matrices of device memory and on
// the CPU keeps a speculative step's working set to one head in the caches.
// (An FP8 weight's block scales must match too.)
bool same_bytes(const WeightStore& store, const std::string& a, const std::string& b) {
  const TensorInfo* x = store.find(a);
  const TensorInfo* y = store.find(b);
  if (!x || !y || x->dtype != y->dtype || x->shape != y->shape || x->nbytes != y->nbytes ||
      std::memcmp(x->data, y->data, x->nbytes) != 0)
    return false;
  return x->dtype != DType::kF8E4M3 || same_bytes(store, a + "_scale_inv", b + "_scale_inv");
}

}  // namespace

ModelWeights bind_model_weights(const ModelConfig& cfg, const WeightStore& store, Backend& backend,
                                bool load_mtp, const ExpertFilter& keep) {
  Binder b(cfg, store, backend, keep);
  ModelWeights w;
  const int64_t h = cfg.hidden_size;
  w.embed = b.matrix("model.embed_tokens.weight", cfg.vocab_size, h);
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) w.layers.push_back(b.layer(i));
  w.final_norm = b.vec("model.norm.weight", h);
  if (cfg.tie_word_embeddings && !store.has("lm_head.weight")) {
    w.lm_head.w = w.embed;
  } else {
    w.lm_head = b.linear("lm_head.weight", cfg.vocab_size, h);
  }
  if (load_mtp) {
    for (int64_t j = 0; j < cfg.num_nextn_predict_layers; ++j) {
      const int64_t i = cfg.num_hidden_layers + j;
      const std::string p = "model.layers." + std::to_string(i) + ".";
      MtpWeights m;
      m.layer = b.layer(i);
      m.enorm = b.vec(p + "enorm.weight", h);
      m.hnorm = b.vec(p + "hnorm.weight", h);
      m.eh_proj = b.linear(p + "eh_proj.weight", h, 2 * h);
      m.head_norm = b.vec(p + "shared_head.norm.weight", h);
      m.head = same_bytes(store, p + "shared_head.head.weight", "lm_head.weight")
                   ? w.lm_head
                   : b.linear(p + "shared_head.head.weight", cfg.vocab_size, h);
      m.embed = !store.has(p + "embed_tokens.weight") ||
                        same_bytes(store, p + "embed_tokens.weight", "model.embed_tokens.weight")
                    ? w.embed
                    : b.matrix(p + "embed_tokens.weight", cfg.vocab_size, h);
      w.mtp.push_back(std::move(m));
    }
  }
  w.parameter_count = b.count();
  return w;
}

void rebind_layer_experts(const ModelConfig& cfg, const WeightStore& store, Backend& backend, int64_t layer,
                          LayerWeights& L, const ExpertFilter& keep) {
  if (!L.moe) return;
  Binder b(cfg, store, backend, keep);
  b.experts(layer, L);
}

}  // namespace moert
