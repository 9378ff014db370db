// config.json: the released configs of DeepSeek-V3, R1, V2, V2-Lite, Moonlight-16B-A3B and Kimi-K2
// (tests/data/configs) parse to the expected values; unsupported or malformed values are rejected with a
// message naming the field and the value; no value, however odd, crashes the parser.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "config/generation_config.h"
#include "config/model_config.h"
#include "st_image.h"
#include "util/error.h"

namespace {

using moert::ModelConfig;
using moert::RoutingParams;
using moert::ScoringFunc;
using moert::TopkMethod;
using json = nlohmann::ordered_json;

const moert_test::fs::path kData = MOERT_TEST_DATA;

std::string config_text(const std::string& name) {
  return moert_test::read_bytes(kData / "configs" / (name + ".json"));
}

ModelConfig load(const std::string& name) {
  return moert::parse_model_config(config_text(name), name + ".json");
}

double yarn_mscale(double s, double m) {
  return s <= 1 ? 1.0 : 0.1 * m * std::log(s) + 1.0;
}

void expect_v3_family(const ModelConfig& c) {
  EXPECT_EQ(c.model_type, "deepseek_v3");
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.num_key_value_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.qk_head_dim(), 192);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.moe_layer_freq, 1);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.config_factor, 40.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40.0);  // 163840 / 4096
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_TRUE(c.quant.fp8);
  EXPECT_EQ(c.quant.block_n, 128);
  EXPECT_EQ(c.quant.block_k, 128);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_id, 1);
  EXPECT_EQ(c.kv_cache_width(), 576);
  const double m = yarn_mscale(40.0, 1.0);
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-12);
  EXPECT_NEAR(c.rope_attention_factor(), 1.0, 1e-12);  // mscale == mscale_all_dim
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_TRUE(c.is_moe_layer(60));
  // The router as DeepSeek-V3 defines it: sigmoid, noaux_tc groups (top-2 sums), normalised, then scaled.
  const RoutingParams r = c.routing();
  EXPECT_EQ(r.experts, 256);
  EXPECT_EQ(r.top_k, 8);
  EXPECT_EQ(r.n_group, 8);
  EXPECT_EQ(r.topk_group, 4);
  EXPECT_TRUE(r.sigmoid);
  EXPECT_TRUE(r.grouped);
  EXPECT_TRUE(r.group_sum_top2);
  EXPECT_TRUE(r.normalize);
  EXPECT_FALSE(r.scale_only_unnormalized);
  EXPECT_FLOAT_EQ(r.routed_scale, 2.5f);
}

TEST(RealConfigs, DeepSeekV3) {
  expect_v3_family(load("deepseek-v3"));
}
TEST(RealConfigs, DeepSeekR1) {
  expect_v3_family(load("deepseek-r1"));
}

TEST(RealConfigs, DeepSeekV2) {
  ModelConfig c = load("deepseek-v2");
  EXPECT_EQ(c.model_type, "deepseek_v2");
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 5120);
  EXPECT_EQ(c.num_hidden_layers, 60);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.n_routed_experts, 160);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.moe_intermediate_size, 1536);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 3);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 16.0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(c.topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.config_factor, 40.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale, 0.707);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim, 0.707);
  EXPECT_FALSE(c.quant.fp8);
  EXPECT_EQ(c.bos_token_id, 100000);
  EXPECT_EQ(c.eos_token_id, 100001);
  const double m = yarn_mscale(40.0, 0.707);
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-12);
  // V2: softmax, group-limited greedy (a group's best), unnormalised (norm_topk_prob false), so scaled.
  const RoutingParams r = c.routing();
  EXPECT_EQ(r.experts, 160);
  EXPECT_EQ(r.top_k, 6);
  EXPECT_EQ(r.n_group, 8);
  EXPECT_EQ(r.topk_group, 3);
  EXPECT_FALSE(r.sigmoid);
  EXPECT_TRUE(r.grouped);
  EXPECT_FALSE(r.group_sum_top2);
  EXPECT_FALSE(r.normalize);
  EXPECT_TRUE(r.scale_only_unnormalized);
  EXPECT_FLOAT_EQ(r.routed_scale, 16.0f);
}

TEST(RealConfigs, DeepSeekV2Lite) {
  ModelConfig c = load("deepseek-v2-lite");
  EXPECT_EQ(c.model_type, "deepseek_v2");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 10944);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.q_lora_rank, 0);  // null: q_proj, no LoRA
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_FALSE(c.quant.fp8);
  const RoutingParams r = c.routing();  // V2-Lite: plain greedy top-6 of 64 softmax scores
  EXPECT_FALSE(r.sigmoid);
  EXPECT_FALSE(r.grouped);
  EXPECT_FALSE(r.normalize);
  EXPECT_TRUE(r.scale_only_unnormalized);
}

TEST(RealConfigs, Moonlight16BA3B) {
  ModelConfig c = load("moonlight-16b-a3b");
  EXPECT_EQ(c.model_type, "deepseek_v3");
  EXPECT_EQ(c.vocab_size, 163840);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 11264);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.446);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_FALSE(c.rope_scaling.yarn);  // rope_scaling: null
  EXPECT_DOUBLE_EQ(c.rope_theta, 50000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FALSE(c.quant.fp8);
  EXPECT_EQ(c.bos_token_id, 163584);
  EXPECT_NEAR(c.softmax_scale(), 1.0 / std::sqrt(192.0), 1e-12);
  EXPECT_DOUBLE_EQ(c.rope_attention_factor(), 1.0);
}

TEST(RealConfigs, KimiK2) {
  ModelConfig c = load("kimi-k2");
  EXPECT_EQ(c.model_type, "kimi_k2");
  EXPECT_EQ(c.vocab_size, 163840);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_attention_heads, 64);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.n_routed_experts, 384);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.827);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.config_factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);  // 131072 / 4096
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_theta, 50000.0);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_TRUE(c.quant.fp8);
  EXPECT_EQ(c.eos_token_id, 163586);
}

// The tiny fixtures' configs parse too, and model_config_to_json gives back valid JSON with the values.
TEST(RealConfigs, FixturesAndRoundTrip) {
  for (const char* fx : {"tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16", "tiny-v2lite-bf16"}) {
    ModelConfig c = moert::load_model_config((kData / fx).string());
    json j = json::parse(moert::model_config_to_json(c));
    EXPECT_EQ(j["vocab_size"], c.vocab_size) << fx;
    EXPECT_EQ(j["n_routed_experts"], c.n_routed_experts) << fx;
  }
  for (const char* name :
       {"deepseek-v3", "deepseek-r1", "deepseek-v2", "deepseek-v2-lite", "moonlight-16b-a3b", "kimi-k2"}) {
    ModelConfig c = load(name);
    json j = json::parse(moert::model_config_to_json(c));
    EXPECT_EQ(j["model_type"], c.model_type) << name;
    EXPECT_EQ(j["q_lora_rank"].is_null(), c.q_lora_rank == 0) << name;
  }
}

// ---- rejections ----------------------------------------------------------------------------------

struct Reject {
  std::string base;  // a config in tests/data/configs
  std::function<void(json&)> edit;
  moert::ErrorCode code;
  std::vector<std::string> expect;  // substrings of the message
};

void run_reject(const Reject& r, int line) {
  json j = json::parse(config_text(r.base));
  r.edit(j);
  try {
    ModelConfig c = moert::parse_model_config(j.dump(), "config.json");
    ADD_FAILURE() << "line " << line << ": accepted " << j.dump();
  } catch (const moert::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), r.code) << "line " << line << ": " << msg;
    EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
    for (const auto& w : r.expect)
      EXPECT_NE(msg.find(w), std::string::npos) << "line " << line << ": lacks '" << w << "': " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "line " << line << ": not a moert::Error: " << e.what();
  }
}

#define REJECT(base, edit, code, ...) \
  run_reject(Reject{base, [](json& j) { edit; }, code, {__VA_ARGS__}}, __LINE__)

constexpr auto U = moert::ErrorCode::kUnsupported;
constexpr auto F = moert::ErrorCode::kFormat;

TEST(ConfigRejects, UnsupportedValuesNameFieldAndValue) {
  REJECT("deepseek-v3", j["model_type"] = "llama", U, "model_type", "llama");
  REJECT("deepseek-v3", j.erase("model_type"), U, "model_type");
  REJECT("deepseek-v3", j["model_type"] = 3, U, "model_type", "3");
  REJECT("deepseek-v3", j["scoring_func"] = "tanh", U, "scoring_func", "tanh");
  REJECT("deepseek-v3", j["topk_method"] = "random", U, "topk_method", "random");
  REJECT("deepseek-v3", j["rope_scaling"]["type"] = "linear", U, "rope_scaling", "linear");
  REJECT("deepseek-v3", (j["rope_scaling"].erase("type"), j["rope_scaling"]["rope_type"] = "dynamic"), U,
         "rope_scaling", "dynamic");
  REJECT("deepseek-v3", j["rope_scaling"] = "yarn", U, "rope_scaling", "yarn");
  REJECT("deepseek-v3", j["rope_scaling"]["factor"] = 0.5, U, "rope_scaling.factor", "0.5");
  REJECT("deepseek-v3", j["rope_scaling"].erase("factor"), U, "factor", "missing");
  REJECT("deepseek-v3", j["rope_scaling"]["original_max_position_embeddings"] = 0, U,
         "original_max_position_embeddings", "0");
  REJECT("deepseek-v3", j["rope_scaling"]["beta_fast"] = "fast", U, "beta_fast", "fast");
  REJECT("deepseek-v3", j["hidden_act"] = "gelu", U, "hidden_act", "gelu");
  REJECT("deepseek-v3", j["attention_bias"] = true, U, "attention_bias", "true");
  REJECT("deepseek-v3", j["rope_interleave"] = false, U, "rope_interleave", "false");
  REJECT("deepseek-v3", j["num_key_value_heads"] = 8, U, "num_key_value_heads", "8");
  REJECT("deepseek-v3", j["qk_rope_head_dim"] = 63, U, "qk_rope_head_dim", "63");
  REJECT("deepseek-v3", j["quantization_config"]["quant_method"] = "bitsandbytes", U,
         "quantization_config.quant_method", "bitsandbytes");
  REJECT("deepseek-v3", j["quantization_config"]["fmt"] = "e5m2", U, "quantization_config.fmt", "e5m2");
  REJECT("deepseek-v3", j["quantization_config"]["activation_scheme"] = "static", U, "activation_scheme",
         "static");
  REJECT("deepseek-v3", (j["quantization_config"]["weight_block_size"] = {64, 64}), U, "weight_block_size",
         "[64,64]");
  REJECT("deepseek-v3", j["quantization_config"].erase("weight_block_size"), U, "weight_block_size",
         "missing");
  // 2^32 + 128 must not be read as 128.
  REJECT("deepseek-v3", (j["quantization_config"]["weight_block_size"] = {4294967424ll, 128}), U,
         "weight_block_size", "4294967424");
  REJECT("deepseek-v3", j["quantization_config"] = "fp8", U, "quantization_config");
}

TEST(ConfigRejects, RouterConsistency) {
  REJECT("deepseek-v3", j["n_group"] = 3, U, "n_group", "3", "256");
  REJECT("deepseek-v3", j["n_group"] = 0, U, "n_group", "0");
  REJECT("deepseek-v3", j["topk_group"] = 9, U, "topk_group", "9");
  REJECT("deepseek-v3", j["num_experts_per_tok"] = 300, U, "num_experts_per_tok", "300");
  REJECT("deepseek-v3", j["num_experts_per_tok"] = 0, U, "num_experts_per_tok", "0");
  REJECT("deepseek-v3", j["num_experts_per_tok"] = 200, U, "num_experts_per_tok", "200");  // > 4 groups x 32
  REJECT("deepseek-v3", (j["n_group"] = 256, j["topk_group"] = 256), U, "n_group");  // 1 expert per group
  REJECT("deepseek-v3", j["scoring_func"] = "softmax", U, "scoring_func", "softmax", "noaux_tc");
  REJECT("deepseek-v3", j.erase("num_experts_per_tok"), U, "num_experts_per_tok", "missing");
  REJECT("deepseek-v3", j.erase("moe_intermediate_size"), U, "moe_intermediate_size", "missing");
  REJECT("deepseek-v3", j["moe_intermediate_size"] = 0, U, "moe_intermediate_size");
  REJECT("deepseek-v3", j["first_k_dense_replace"] = 100, U, "first_k_dense_replace", "100");
  REJECT("deepseek-v2", j["n_group"] = 7, U, "n_group", "7", "160");
  REJECT("kimi-k2", j["n_group"] = 5, U, "n_group", "5", "384");
}

TEST(ConfigRejects, MissingAndMistypedFields) {
  for (const char* f :
       {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "max_position_embeddings"}) {
    SCOPED_TRACE(f);
    json j = json::parse(config_text("deepseek-v3"));
    j.erase(f);
    try {
      moert::parse_model_config(j.dump(), "config.json");
      ADD_FAILURE() << "accepted a config without " << f;
    } catch (const moert::Error& e) {
      EXPECT_EQ(e.code(), U);
      EXPECT_NE(std::string(e.what()).find(std::string("'") + f + "' is missing"), std::string::npos)
          << e.what();
    }
  }
  REJECT("deepseek-v3", j["hidden_size"] = nullptr, U, "hidden_size", "missing");
  REJECT("deepseek-v3", j["hidden_size"] = "7168", U, "hidden_size", "\"7168\"");
  REJECT("deepseek-v3", j["hidden_size"] = 7168.5, U, "hidden_size", "7168.5");
  REJECT("deepseek-v3", j["hidden_size"] = true, U, "hidden_size", "true");
  REJECT("deepseek-v3", j["hidden_size"] = json::array({7168}), U, "hidden_size", "[7168]");
  REJECT("deepseek-v3", j["hidden_size"] = 0, U, "hidden_size", "0");
  REJECT("deepseek-v3", j["hidden_size"] = -7168, U, "hidden_size", "-7168");
  REJECT("deepseek-v3", j["rms_norm_eps"] = "small", U, "rms_norm_eps", "small");
  REJECT("deepseek-v3", j["norm_topk_prob"] = "yes", U, "norm_topk_prob", "yes");
  REJECT("deepseek-v3", j["scoring_func"] = 1, U, "scoring_func", "1");
  REJECT("deepseek-v2-lite", j["q_lora_rank"] = -1, U, "q_lora_rank", "-1");
  REJECT("deepseek-v3", j["eos_token_id"] = json::array({1, "x"}), U, "eos_token_id", "\"x\"");
  REJECT("deepseek-v3", j["eos_token_id"] = json::array({-2}), U, "eos_token_id", "-2");
}

// eos_token_id may be a list (transformers allows one): every id ends a sequence, the first is reported.
TEST(RealConfigs, EosTokenIdList) {
  json j = json::parse(config_text("kimi-k2"));
  EXPECT_EQ(moert::parse_model_config(j.dump(), "config.json").eos_token_ids, std::vector<int64_t>{163586});
  j["eos_token_id"] = json::array({163586, 163585});
  const ModelConfig c = moert::parse_model_config(j.dump(), "config.json");
  EXPECT_EQ(c.eos_token_id, 163586);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{163586, 163585}));
  j.erase("eos_token_id");
  EXPECT_TRUE(moert::parse_model_config(j.dump(), "config.json").eos_token_ids.empty());
}

// Integers too large for any real model, and floats out of int64 range, are rejected (not wrapped or cast
// with undefined behaviour); derived sizes (qk_head_dim, kv_cache_width, ...) cannot overflow.
TEST(ConfigRejects, ImplausiblyLargeNumbers) {
  REJECT("deepseek-v3", j["hidden_size"] = 1e300, U, "hidden_size");
  REJECT("deepseek-v3", j["hidden_size"] = -1e300, U, "hidden_size");
  REJECT("deepseek-v3", j["hidden_size"] = 9.3e18, U, "hidden_size");
  REJECT("deepseek-v3", j["hidden_size"] = 18446744073709551615ull, U, "hidden_size", "18446744073709551615");
  REJECT("deepseek-v3", j["qk_nope_head_dim"] = 9223372036854775807ll, U, "qk_nope_head_dim");
  REJECT("deepseek-v3", j["max_position_embeddings"] = 9223372036854775807ll, U, "max_position_embeddings");
  REJECT("deepseek-v3", j["n_routed_experts"] = 4611686018427387904ll, U, "n_routed_experts");
  // Integral floats in range are accepted as integers (some exporters write 7168.0).
  json j = json::parse(config_text("deepseek-v3"));
  j["hidden_size"] = 7168.0;
  EXPECT_EQ(moert::parse_model_config(j.dump(), "config.json").hidden_size, 7168);
}

TEST(ConfigRejects, NotAConfig) {
  // A number out of double range makes nlohmann throw out_of_range, not parse_error: still kFormat.
  for (const char* text :
       {"", "{", "[]", "null", "42", "\"deepseek_v3\"", "{\"model_type\": \"deepseek_v3\",}",
        "{\"model_type\": \"deepseek_v3\", \"hidden_size\": 1e400}", "{\"x\": -1e99999}"}) {
    try {
      moert::parse_model_config(text, "config.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const moert::Error& e) {
      EXPECT_EQ(e.code(), F) << text << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos);
    }
  }
}

// Every field of the V3 config replaced by each odd value: the parser returns or throws moert::Error,
// and what it returns is consistent.
TEST(ConfigRejects, OddValuesNeverCrash) {
  const json base = json::parse(config_text("deepseek-v3"));
  const std::vector<json> odd = {nullptr,
                                 -1,
                                 0,
                                 1,
                                 2,
                                 3,
                                 1.5,
                                 1e300,
                                 -1e300,
                                 "",
                                 "x",
                                 true,
                                 false,
                                 json::array(),
                                 json::object(),
                                 json::array({1, 2}),
                                 18446744073709551615ull,
                                 9223372036854775807ll,
                                 -9223372036854775807ll - 1};
  int ok = 0, rejected = 0;
  std::vector<std::string> keys;
  for (auto it = base.begin(); it != base.end(); ++it) keys.push_back(it.key());
  for (const char* k : {"rope_scaling", "quantization_config"})
    for (auto it = base[k].begin(); it != base[k].end(); ++it)
      keys.push_back(std::string(k) + "/" + it.key());
  for (const auto& key : keys) {
    for (const auto& v : odd) {
      json j = base;
      auto slash = key.find('/');
      if (slash == std::string::npos)
        j[key] = v;
      else
        j[key.substr(0, slash)][key.substr(slash + 1)] = v;
      try {
        ModelConfig c = moert::parse_model_config(j.dump(), "config.json");
        ++ok;
        EXPECT_GE(c.hidden_size, 1);
        EXPECT_EQ(c.num_key_value_heads, c.num_attention_heads);
        if (c.n_routed_experts > 0) {
          EXPECT_EQ(c.n_routed_experts % c.n_group, 0) << key << "=" << v.dump();
          EXPECT_LE(c.topk_group, c.n_group) << key << "=" << v.dump();
          EXPECT_GE(c.num_experts_per_tok, 1) << key << "=" << v.dump();
          EXPECT_LE(c.num_experts_per_tok, c.n_routed_experts) << key << "=" << v.dump();
        }
        // Computable without UB (a huge mscale_all_dim gives an infinite scale, which the model would reject
        // by producing nonsense rather than by crashing: not this parser's job to bound it).
        volatile double scale = c.softmax_scale() + c.rope_attention_factor();
        (void)scale;
        EXPECT_FALSE(moert::model_config_to_json(c).empty());
      } catch (const moert::Error& e) {
        ++rejected;
        EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
      } catch (const std::exception& e) {
        ADD_FAILURE() << key << "=" << v.dump() << ": not a moert::Error: " << e.what();
      }
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace

// generation_config.json's eos_token_id: one id, a list, or null; anything else names the field.
TEST(GenerationConfig, EosTokenIds) {
  using moert::parse_generation_defaults;
  EXPECT_EQ(parse_generation_defaults(R"({"eos_token_id": 7})", "g").eos_token_ids, std::vector<int64_t>{7});
  EXPECT_EQ(parse_generation_defaults(R"({"eos_token_id": [7, 9]})", "g").eos_token_ids,
            (std::vector<int64_t>{7, 9}));
  EXPECT_TRUE(parse_generation_defaults(R"({"eos_token_id": null})", "g").eos_token_ids.empty());
  EXPECT_TRUE(parse_generation_defaults(R"({"temperature": 0.6})", "g").eos_token_ids.empty());
  for (const char* bad :
       {R"({"eos_token_id": "7"})", R"({"eos_token_id": [7, -1]})", R"({"eos_token_id": 1.5})"}) {
    try {
      parse_generation_defaults(bad, "generation_config.json");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const moert::Error& e) {
      EXPECT_EQ(e.code(), F);
      EXPECT_NE(std::string(e.what()).find("eos_token_id"), std::string::npos) << e.what();
    }
  }
}
