#include "option_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "util/error.h"

namespace moert::capi {
namespace {

const moert_options kNone;

template <typename T>
void read_int(const moert_options& o, const char* key, T& field) {
  if (const int64_t* v = o.find_int(key)) field = static_cast<T>(*v);
}
void read_bool(const moert_options& o, const char* key, bool& field) {
  if (const int64_t* v = o.find_int(key)) field = *v != 0;
}
void read_float(const moert_options& o, const char* key, double& field) {
  if (const double* v = o.find_float(key)) field = *v;
}
void read_string(const moert_options& o, const char* key, std::string& field) {
  if (const std::string* v = o.find_string(key)) field = *v;
}

}  // namespace

std::pair<int32_t, float> parse_logit_bias(const std::string& entry) {
  // from_chars: the same in every locale (a host that set LC_NUMERIC keeps "5.5" meaning 5.5).
  const char* begin = entry.data();
  const char* end = begin + entry.size();
  const char* colon = std::find(begin, end, ':');
  int64_t t = -1;
  double b = NAN;
  const auto id = std::from_chars(begin, colon, t);
  const bool id_ok = colon != begin && id.ec == std::errc() && id.ptr == colon && t >= 0 && t <= 0x7FFFFFFF;
  const auto bias = colon == end ? std::from_chars_result{end, std::errc::invalid_argument}
                                 : std::from_chars(colon + 1, end, b);
  const bool bias_ok = colon != end && colon + 1 != end && bias.ec == std::errc() && bias.ptr == end &&
                       std::isfinite(b) && b >= -100 && b <= 100;
  if (!id_ok || !bias_ok)
    fail(ErrorCode::kInvalidArgument,
         "logit_bias: '" + entry + "' is not TOKEN_ID:BIAS (a token id, then a bias from -100 to 100)");
  return {static_cast<int32_t>(t), static_cast<float>(b)};
}

LoadOptions load_options(const moert_options* options) {
  options_require_scope(options, OptionScope::kLoad);
  const moert_options& o = options ? *options : kNone;
  LoadOptions lo;
  read_int(o, "threads", lo.threads);
  read_string(o, "device", lo.device);
  if (const std::string* v = o.find_string("activations"))
    lo.act_mode = *v == "fp8" ? ActMode::kFp8 : ActMode::kF32;
  read_int(o, "kv_cache_bytes", lo.kv_cache_bytes);
  read_int(o, "max_batch", lo.max_batch);
  if (const std::string* v = o.find_string("attention"))
    lo.attention = *v == "expanded"   ? AttentionForm::kExpanded
                   : *v == "absorbed" ? AttentionForm::kAbsorbed
                                      : AttentionForm::kAuto;
  read_bool(o, "mtp", lo.load_mtp);
  read_bool(o, "batch_invariant", lo.batch_invariant);
  read_bool(o, "cuda_graphs", lo.cuda_graphs);
  read_string(o, "kv_cache_dtype", lo.kv_cache_dtype);
  read_string(o, "activation_dtype", lo.activation_dtype);
  read_int(o, "ep_size", lo.ep_size);
  read_string(o, "ep_transport", lo.ep_transport);
  read_int(o, "ep_redundant", lo.ep_redundant);
  read_int(o, "eplb_interval", lo.eplb_interval);
  read_int(o, "ep_overlap", lo.ep_overlap);
  read_int(o, "ep_max_ranks_per_token", lo.ep_max_ranks_per_token);
  read_int(o, "ep_timeout_ms", lo.ep_timeout_ms);
  read_bool(o, "check_weights", lo.check_weights);
  read_bool(o, "prefix_cache", lo.prefix_cache);
  read_string(o, "speculative", lo.speculative);
  read_int(o, "draft_tokens", lo.draft_tokens);
  return lo;
}

GenerateOptions generate_options(const moert_options* options, const GenerationDefaults& d,
                                 const std::function<uint64_t()>& draw_seed) {
  options_require_scope(options, OptionScope::kGenerate);
  const moert_options& o = options ? *options : kNone;
  GenerateOptions g;
  GenerationParams& p = g.params;
  SamplingParams& s = p.sampling;
  s.temperature = d.temperature.value_or(s.temperature);
  s.top_k = d.top_k.value_or(s.top_k);
  s.top_p = d.top_p.value_or(s.top_p);
  s.repetition_penalty = d.repetition_penalty.value_or(s.repetition_penalty);
  read_int(o, "max_tokens", p.max_tokens);
  read_float(o, "temperature", s.temperature);
  read_int(o, "top_k", s.top_k);
  read_float(o, "top_p", s.top_p);
  read_float(o, "min_p", s.min_p);
  read_float(o, "repetition_penalty", s.repetition_penalty);
  read_float(o, "presence_penalty", s.presence_penalty);
  read_float(o, "frequency_penalty", s.frequency_penalty);
  if (const int64_t* v = o.find_int("seed"))
    s.seed = static_cast<uint64_t>(*v);
  else if (s.temperature > 0 && draw_seed)
    s.seed = draw_seed();
  p.stop_strings = o.get_strings("stop");
  for (int64_t id : o.get_ints("stop_token_ids")) p.stop_token_ids.push_back(static_cast<int32_t>(id));
  read_bool(o, "ignore_eos", p.ignore_eos);
  read_int(o, "logprobs", p.logprobs);
  for (const std::string& e : o.get_strings("logit_bias")) {  // one bias per token: the last entry's
    const std::pair<int32_t, float> tb = parse_logit_bias(e);
    std::erase_if(s.logit_bias, [&](const auto& x) { return x.first == tb.first; });
    s.logit_bias.push_back(tb);
  }
  read_bool(o, "add_generation_prompt", g.add_generation_prompt);
  return g;
}

RandomCheckpointSpec checkpoint_spec(const moert_options* options) {
  options_require_scope(options, OptionScope::kCheckpoint);
  const moert_options& o = options ? *options : kNone;
  RandomCheckpointSpec s;
  read_int(o, "model.vocab", s.vocab);
  read_int(o, "model.hidden", s.hidden);
  read_int(o, "model.intermediate", s.intermediate);
  read_int(o, "model.moe_intermediate", s.moe_intermediate);
  read_int(o, "model.layers", s.layers);
  read_int(o, "model.dense_layers", s.dense_layers);
  read_int(o, "model.heads", s.heads);
  read_int(o, "model.q_lora", s.q_lora);
  read_int(o, "model.kv_lora", s.kv_lora);
  read_int(o, "model.experts", s.experts);
  read_int(o, "model.top_k", s.top_k);
  read_int(o, "model.groups", s.n_group);
  read_int(o, "model.topk_groups", s.topk_group);
  read_int(o, "model.shared", s.shared);
  read_int(o, "model.mtp", s.mtp);
  read_bool(o, "model.fp8", s.fp8);
  read_int(o, "model.seed", s.seed);
  if (s.dense_layers > s.layers) fail(ErrorCode::kInvalidArgument, "model.dense_layers exceeds model.layers");
  if (s.experts && (s.experts % s.n_group || s.topk_group > s.n_group || s.top_k > s.experts ||
                    s.top_k > s.topk_group * (s.experts / s.n_group) || s.experts / s.n_group < 2))
    fail(ErrorCode::kInvalidArgument, "inconsistent routing shape: experts " + std::to_string(s.experts) +
                                          ", groups " + std::to_string(s.n_group) + ", topk_groups " +
                                          std::to_string(s.topk_group) + ", top_k " +
                                          std::to_string(s.top_k));
  return s;
}

QuantizeSpec quantize_spec(const moert_options* options) {
  options_require_scope(options, OptionScope::kQuantize);
  const moert_options& o = options ? *options : kNone;
  QuantizeSpec s;
  read_int(o, "quantize.group_size", s.group);  // 32, 64 or 128: the table's choices
  read_int(o, "quantize.threads", s.threads);
  return s;
}

}  // namespace moert::capi
