#include "config/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"
#include "util/file_io.h"

namespace moert {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& source, const std::string& field, const std::string& why) {
  fail(ErrorCode::kUnsupported, source + ": field '" + field + "' " + why);
}

std::string show(const json& v) {
  return v.dump();
}

// Reads an integer field; `required` fields must be present and non-null.
int64_t get_int(const json& j, const std::string& src, const char* key, std::optional<int64_t> dflt,
                int64_t min_value = 0) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (!dflt) bad(src, key, "is missing");
    return *dflt;
  }
  if (!it->is_number_integer() &&
      !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>()))
    bad(src, key, "must be an integer, got " + show(*it));
  // No real config comes near 2^31; bounding every integer keeps the casts below and the sizes derived
  // from them (qk_head_dim, products of two dimensions) free of overflow.
  constexpr double kMaxInt = 2147483647.0;
  const double approx = it->get<double>();
  if (approx > kMaxInt || approx < -kMaxInt)
    bad(src, key, "has value " + show(*it) + ", which is implausibly large");
  int64_t v = it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(approx);
  if (v < min_value)
    bad(src, key, "has value " + show(*it) + ", below the minimum " + std::to_string(min_value));
  return v;
}

double get_double(const json& j, const std::string& src, const char* key, std::optional<double> dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (!dflt) bad(src, key, "is missing");
    return *dflt;
  }
  if (!it->is_number()) bad(src, key, "must be a number, got " + show(*it));
  double v = it->get<double>();
  if (!std::isfinite(v)) bad(src, key, "must be finite, got " + show(*it));
  return v;
}

bool get_bool(const json& j, const std::string& src, const char* key, bool dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) bad(src, key, "must be true or false, got " + show(*it));
  return it->get<bool>();
}

std::string get_string(const json& j, const std::string& src, const char* key, const std::string& dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_string()) bad(src, key, "must be a string, got " + show(*it));
  return it->get<std::string>();
}

void parse_rope_scaling(const json& j, const std::string& src, ModelConfig& c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return;
  if (!it->is_object()) bad(src, "rope_scaling", "must be an object, got " + show(*it));
  const json& r = *it;
  std::string type = get_string(r, src, "type", "");
  std::string rope_type = get_string(r, src, "rope_type", type);
  if (rope_type.empty()) rope_type = type;
  if (rope_type == "default" || rope_type.empty()) return;
  if (rope_type != "yarn")
    bad(src, "rope_scaling.type", "has value \"" + rope_type + "\"; moert supports \"yarn\"");
  RopeScaling& y = c.rope_scaling;
  y.yarn = true;
  y.factor = get_double(r, src, "factor", std::nullopt);
  y.config_factor = y.factor;
  if (y.factor < 1.0) bad(src, "rope_scaling.factor", "has value " + show(r["factor"]) + "; must be >= 1");
  y.mscale = get_double(r, src, "mscale", 0.0);
  y.mscale_all_dim = get_double(r, src, "mscale_all_dim", 0.0);
  y.beta_fast = get_double(r, src, "beta_fast", 32.0);
  y.beta_slow = get_double(r, src, "beta_slow", 1.0);
  y.attention_factor = get_double(r, src, "attention_factor", 0.0);
  y.truncate = get_bool(r, src, "truncate", true);
  y.original_max_position_embeddings =
      get_int(r, src, "original_max_position_embeddings", c.max_position_embeddings, 1);
  if (r.contains("original_max_position_embeddings") && !r["original_max_position_embeddings"].is_null()) {
    // As transformers does for DeepSeek: the frequencies use max_position_embeddings / original.
    y.factor = static_cast<double>(c.max_position_embeddings) /
               static_cast<double>(y.original_max_position_embeddings);
  }
}

double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

double ModelConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling.yarn && rope_scaling.mscale_all_dim != 0.0) {
    double m = yarn_get_mscale(rope_scaling.config_factor, rope_scaling.mscale_all_dim);
    s *= m * m;
  }
  return s;
}

RoutingParams ModelConfig::routing() const {
  RoutingParams p;
  p.experts = n_routed_experts;
  p.top_k = num_experts_per_tok;
  p.n_group = n_group;
  p.topk_group = topk_group;
  p.sigmoid = scoring_func == ScoringFunc::kSigmoid;
  p.grouped = topk_method != TopkMethod::kGreedy;
  p.group_sum_top2 = topk_method == TopkMethod::kNoauxTc;
  p.routed_scale = static_cast<float>(routed_scaling_factor);
  if (model_type == "deepseek_v2") {
    // DeepSeek-V2: normalise only when asked (and top_k > 1), and then without the routed scale.
    p.normalize = norm_topk_prob && num_experts_per_tok > 1;
    p.scale_only_unnormalized = true;
  } else {
    p.normalize = norm_topk_prob;
    p.scale_only_unnormalized = false;
  }
  return p;
}

double ModelConfig::rope_attention_factor() const {
  if (!rope_scaling.yarn) return 1.0;
  const RopeScaling& y = rope_scaling;
  if (y.attention_factor != 0.0) return y.attention_factor;
  if (y.mscale != 0.0 && y.mscale_all_dim != 0.0)
    return yarn_get_mscale(y.factor, y.mscale) / yarn_get_mscale(y.factor, y.mscale_all_dim);
  return yarn_get_mscale(y.factor, 1.0);
}

ModelConfig parse_model_config(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    fail(ErrorCode::kFormat, src + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) fail(ErrorCode::kFormat, src + ": the top level must be a JSON object");

  ModelConfig c;
  c.model_type = get_string(j, src, "model_type", "");
  if (c.model_type != "deepseek_v2" && c.model_type != "deepseek_v3" && c.model_type != "kimi_k2")
    bad(src, "model_type",
        "has value \"" + c.model_type +
            "\"; moert supports \"deepseek_v2\", \"deepseek_v3\" and \"kimi_k2\"");
  const bool v2 = c.model_type == "deepseek_v2";

  c.vocab_size = get_int(j, src, "vocab_size", std::nullopt, 1);
  c.hidden_size = get_int(j, src, "hidden_size", std::nullopt, 1);
  c.intermediate_size = get_int(j, src, "intermediate_size", std::nullopt, 1);
  c.num_hidden_layers = get_int(j, src, "num_hidden_layers", std::nullopt, 1);
  c.num_nextn_predict_layers = get_int(j, src, "num_nextn_predict_layers", 0, 0);
  c.num_attention_heads = get_int(j, src, "num_attention_heads", std::nullopt, 1);
  c.num_key_value_heads = get_int(j, src, "num_key_value_heads", c.num_attention_heads, 1);
  c.q_lora_rank = get_int(j, src, "q_lora_rank", 0, 0);
  c.kv_lora_rank = get_int(j, src, "kv_lora_rank", std::nullopt, 1);
  c.qk_nope_head_dim = get_int(j, src, "qk_nope_head_dim", std::nullopt, 1);
  c.qk_rope_head_dim = get_int(j, src, "qk_rope_head_dim", std::nullopt, 2);
  if (c.qk_rope_head_dim % 2)
    bad(src, "qk_rope_head_dim", "must be even, got " + show(j["qk_rope_head_dim"]));
  c.v_head_dim = get_int(j, src, "v_head_dim", std::nullopt, 1);
  c.n_routed_experts = get_int(j, src, "n_routed_experts", 0, 0);
  c.n_shared_experts = get_int(j, src, "n_shared_experts", 0, 0);
  c.moe_intermediate_size = get_int(j, src, "moe_intermediate_size",
                                    c.n_routed_experts ? std::nullopt : std::optional<int64_t>(0), 0);
  c.num_experts_per_tok = get_int(j, src, "num_experts_per_tok",
                                  c.n_routed_experts ? std::nullopt : std::optional<int64_t>(0), 0);
  c.n_group = get_int(j, src, "n_group", 1, 1);
  c.topk_group = get_int(j, src, "topk_group", 1, 1);
  c.first_k_dense_replace = get_int(j, src, "first_k_dense_replace", 0, 0);
  c.moe_layer_freq = get_int(j, src, "moe_layer_freq", 1, 1);
  c.norm_topk_prob = get_bool(j, src, "norm_topk_prob", !v2);
  c.routed_scaling_factor = get_double(j, src, "routed_scaling_factor", 1.0);
  c.rms_norm_eps = get_double(j, src, "rms_norm_eps", 1e-6);
  // rsqrt(mean(x^2) + eps) is infinite for a zero row with eps 0 and NaN-prone with eps < 0.
  if (c.rms_norm_eps <= 0) bad(src, "rms_norm_eps", "must be positive, got " + show(j["rms_norm_eps"]));
  c.rope_theta = get_double(j, src, "rope_theta", 10000.0);
  c.rope_interleave = get_bool(j, src, "rope_interleave", true);
  c.max_position_embeddings = get_int(j, src, "max_position_embeddings", std::nullopt, 1);
  c.tie_word_embeddings = get_bool(j, src, "tie_word_embeddings", false);
  c.bos_token_id = get_int(j, src, "bos_token_id", -1, -1);
  if (auto e = j.find("eos_token_id"); e != j.end() && e->is_array()) {  // transformers allows a list
    for (const json& v : *e) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0x7FFFFFFF)
        bad(src, "eos_token_id", "must be token ids, got " + show(*e));
      c.eos_token_ids.push_back(v.get<int64_t>());
    }
    c.eos_token_id = c.eos_token_ids.empty() ? -1 : c.eos_token_ids[0];
  } else {
    c.eos_token_id = get_int(j, src, "eos_token_id", -1, -1);
    if (c.eos_token_id >= 0) c.eos_token_ids = {c.eos_token_id};
  }

  if (!c.rope_interleave)
    bad(src, "rope_interleave", "has value false; moert implements DeepSeek's interleaved RoPE only");
  if (get_string(j, src, "hidden_act", "silu") != "silu")
    bad(src, "hidden_act", "has value " + show(j["hidden_act"]) + "; moert supports \"silu\"");
  if (get_bool(j, src, "attention_bias", false))
    bad(src, "attention_bias", "has value true; moert supports attention without biases");
  if (c.num_key_value_heads != c.num_attention_heads)
    bad(src, "num_key_value_heads",
        "has value " + show(j["num_key_value_heads"]) + "; MLA needs it equal to num_attention_heads (" +
            std::to_string(c.num_attention_heads) + ")");

  std::string scoring = get_string(j, src, "scoring_func", v2 ? "softmax" : "sigmoid");
  if (scoring == "softmax")
    c.scoring_func = ScoringFunc::kSoftmax;
  else if (scoring == "sigmoid")
    c.scoring_func = ScoringFunc::kSigmoid;
  else
    bad(src, "scoring_func", "has value \"" + scoring + "\"; moert supports \"softmax\" and \"sigmoid\"");

  std::string topk = get_string(j, src, "topk_method", v2 ? "greedy" : "noaux_tc");
  if (topk == "greedy")
    c.topk_method = TopkMethod::kGreedy;
  else if (topk == "group_limited_greedy")
    c.topk_method = TopkMethod::kGroupLimitedGreedy;
  else if (topk == "noaux_tc")
    c.topk_method = TopkMethod::kNoauxTc;
  else
    bad(src, "topk_method",
        "has value \"" + topk + "\"; moert supports \"greedy\", \"group_limited_greedy\" and \"noaux_tc\"");
  if (c.topk_method == TopkMethod::kNoauxTc && c.scoring_func != ScoringFunc::kSigmoid)
    bad(src, "scoring_func", "has value \"" + scoring + "\"; topk_method \"noaux_tc\" needs \"sigmoid\"");

  if (c.n_routed_experts > 0) {
    if (c.n_routed_experts % c.n_group)
      bad(src, "n_group",
          "has value " + show(j["n_group"]) + ", which does not divide n_routed_experts (" +
              std::to_string(c.n_routed_experts) + ")");
    if (c.topk_group > c.n_group)
      bad(src, "topk_group", "has value " + show(j["topk_group"]) + ", more than n_group");
    if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.n_routed_experts)
      bad(src, "num_experts_per_tok",
          "has value " + show(j["num_experts_per_tok"]) + ", outside 1..n_routed_experts");
    if (c.num_experts_per_tok > c.topk_group * (c.n_routed_experts / c.n_group) &&
        c.topk_method != TopkMethod::kGreedy)
      bad(src, "num_experts_per_tok",
          "has value " + show(j["num_experts_per_tok"]) + ", more than the experts in topk_group groups");
    if (c.topk_method == TopkMethod::kNoauxTc && c.n_routed_experts / c.n_group < 2)
      bad(src, "n_group", "leaves fewer than 2 experts per group, which noaux_tc's top-2 group score needs");
    if (c.moe_intermediate_size < 1) bad(src, "moe_intermediate_size", "must be at least 1");
  }
  if (c.first_k_dense_replace > c.num_hidden_layers)
    bad(src, "first_k_dense_replace",
        "has value " + show(j["first_k_dense_replace"]) + ", more than num_hidden_layers");

  parse_rope_scaling(j, src, c);

  // DeepSeek's fp8 quantization_config (at `field`: quantization_config, or moert_q4's base).
  auto parse_fp8 = [&](const json& q, const std::string& field) {
    std::string fmt = get_string(q, src, "fmt", "e4m3");
    if (fmt != "e4m3") bad(src, field + ".fmt", "has value \"" + fmt + "\"; moert supports \"e4m3\"");
    std::string act = get_string(q, src, "activation_scheme", "dynamic");
    if (act != "dynamic")
      bad(src, field + ".activation_scheme", "has value \"" + act + "\"; moert supports \"dynamic\"");
    auto b = q.find("weight_block_size");
    if (b == q.end() || !b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() ||
        !(*b)[1].is_number_integer() || (*b)[0].get<int64_t>() != 128 || (*b)[1].get<int64_t>() != 128)
      bad(src, field + ".weight_block_size",
          "has value " + (b == q.end() ? std::string("(missing)") : show(*b)) +
              "; moert supports [128, 128]");
    c.quant.fp8 = true;
  };
  auto q = j.find("quantization_config");
  if (q != j.end() && !q->is_null()) {
    if (!q->is_object()) bad(src, "quantization_config", "must be an object");
    std::string method = get_string(*q, src, "quant_method", "");
    if (method == "fp8") {
      parse_fp8(*q, "quantization_config");
    } else if (method == "moert_q4") {
      auto g = q->find("group_size");
      if (g == q->end() || !g->is_number_integer() ||
          (g->get<int64_t>() != 32 && g->get<int64_t>() != 64 && g->get<int64_t>() != 128))
        bad(src, "quantization_config.group_size",
            "has value " + (g == q->end() ? std::string("(missing)") : show(*g)) +
                "; moert_q4 supports 32, 64 or 128");
      c.quant.expert_q4_group = g->get<int64_t>();
      std::string modules = get_string(*q, src, "modules", "");
      if (modules != "experts")
        bad(src, "quantization_config.modules",
            "has value \"" + modules + "\"; moert_q4 supports \"experts\"");
      auto bits = q->find("bits");
      if (bits != q->end() && !(bits->is_number_integer() && bits->get<int64_t>() == 4))
        bad(src, "quantization_config.bits", "has value " + show(*bits) + "; moert_q4 is 4-bit");
      auto base = q->find("base");
      if (base != q->end() && !base->is_null()) {
        if (!base->is_object()) bad(src, "quantization_config.base", "must be an object or null");
        std::string bm = get_string(*base, src, "quant_method", "");
        if (bm != "fp8")
          bad(src, "quantization_config.base.quant_method",
              "has value \"" + bm + "\"; moert_q4 stacks on \"fp8\" or unquantised (null) weights");
        parse_fp8(*base, "quantization_config.base");
      }
    } else {
      bad(src, "quantization_config.quant_method",
          "has value \"" + method + "\"; moert supports \"fp8\" and \"moert_q4\"");
    }
  }
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  return parse_model_config(read_regular_file(path), path);
}

std::string model_config_to_json(const ModelConfig& c) {
  json j;
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["q_lora_rank"] = c.q_lora_rank ? json(c.q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["scoring_func"] = c.scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax";
  j["topk_method"] = c.topk_method == TopkMethod::kNoauxTc              ? "noaux_tc"
                     : c.topk_method == TopkMethod::kGroupLimitedGreedy ? "group_limited_greedy"
                                                                        : "greedy";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["max_position_embeddings"] = c.max_position_embeddings;
  if (c.rope_scaling.yarn) {
    j["rope_scaling"] = {
        {"type", "yarn"},
        {"factor", c.rope_scaling.factor},
        {"mscale", c.rope_scaling.mscale},
        {"mscale_all_dim", c.rope_scaling.mscale_all_dim},
        {"beta_fast", c.rope_scaling.beta_fast},
        {"beta_slow", c.rope_scaling.beta_slow},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["softmax_scale"] = c.softmax_scale();
  j["weights"] = c.quant.fp8 ? "fp8_e4m3_block128" : "unquantized";
  j["expert_weights"] = c.quant.expert_q4_group ? "moert_q4_group" + std::to_string(c.quant.expert_q4_group)
                                                : j["weights"].get<std::string>();
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  return j.dump(2);
}

}  // namespace moert
