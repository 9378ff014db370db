// libFuzzer target: parse_model_config on arbitrary text must never crash; it either throws moert::Error
// (kFormat for malformed JSON, kUnsupported for a field it rejects) or returns a config that satisfies the
// invariants the model relies on, whose derived values and JSON rendering are computable without UB.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/model_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    moert::ModelConfig c = moert::parse_model_config(text, "fuzz/config.json");
    if (c.hidden_size < 1 || c.num_hidden_layers < 1 || c.vocab_size < 1) std::abort();
    if (c.num_key_value_heads != c.num_attention_heads) std::abort();
    if (c.qk_rope_head_dim % 2 != 0) std::abort();
    if (c.n_routed_experts > 0) {
      if (c.n_group < 1 || c.n_routed_experts % c.n_group != 0) std::abort();
      if (c.topk_group > c.n_group) std::abort();
      if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.n_routed_experts) std::abort();
    }
    volatile double s = c.softmax_scale() + c.rope_attention_factor();
    (void)s;
    volatile int64_t w = c.kv_cache_width() + c.qk_head_dim();
    (void)w;
    for (int64_t l = 0; l < 4; ++l) (void)c.is_moe_layer(l);
    (void)moert::model_config_to_json(c);
  } catch (const moert::Error& e) {
    if (e.code() != moert::ErrorCode::kFormat && e.code() != moert::ErrorCode::kUnsupported) std::abort();
  }
  return 0;
}
