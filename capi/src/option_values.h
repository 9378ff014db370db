// The runtime's settings from a moert_options: each scope's keys read into the struct its call takes.
// An absent key keeps the struct's member initialiser, which tests/options checks equal to the default in
// option_table.inc; every key of a scope must change the struct (the same test), so none is ignored.
#pragma once
#include <functional>

#include "checkpoint/checkpoint_quantize.h"
#include "checkpoint/random_checkpoint.h"
#include "engine/engine.h"
#include "engine/model_instance.h"
#include "engine/served_model.h"  // GenerationDefaults
#include "options.h"

namespace moert::capi {

// moert_model_load's keys. o may be null (defaults). Throws Error(kInvalidArgument) for a key of
// another scope.
LoadOptions load_options(const moert_options* o);

// moert_generate_*'s keys: the request's parameters and how the chat prompt ends.
struct GenerateOptions {
  GenerationParams params;
  bool add_generation_prompt = true;  // moert_generate_chat only
  bool operator==(const GenerateOptions&) const = default;
};
// The caller's keys; the checkpoint's generation_config.json (d) for the sampling keys the caller left
// unset (as transformers and vLLM do); the defaults for the rest. A sampled request without a seed gets
// draw_seed()'s (none when it is null). o may be null. Throws Error(kInvalidArgument) for a key of another
// scope.
GenerateOptions generate_options(const moert_options* o, const GenerationDefaults& d,
                                 const std::function<uint64_t()>& draw_seed);
// One "logit_bias" entry, "TOKEN_ID:BIAS" (a non-negative id, a bias in [-100, 100]). Throws
// Error(kInvalidArgument) naming the entry.
std::pair<int32_t, float> parse_logit_bias(const std::string& entry);

// moert_checkpoint_write_random's keys. o may be null. Throws Error(kInvalidArgument) for a key of
// another scope or an inconsistent shape.
RandomCheckpointSpec checkpoint_spec(const moert_options* o);

// moert_checkpoint_quantize's keys (the format is moert_q4's). o may be null. Throws Error(kInvalidArgument)
// for a key of another scope.
QuantizeSpec quantize_spec(const moert_options* o);

}  // namespace moert::capi
