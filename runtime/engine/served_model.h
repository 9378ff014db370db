// What one loaded model offers a host: the model (logits), its tokenizer (when the checkpoint has
// tokenizer.json or tiktoken.model) and the generation engine, started on first use. Shared by every handle
// that refers to the model; the last reference stops the engine.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "config/generation_config.h"
#include "engine/engine.h"
#include "engine/model_instance.h"
#include "tokenizer/tokenizer.h"

namespace moert {

class ServedModel {
 public:
  static std::shared_ptr<ServedModel> load(const std::string& dir, const LoadOptions& opts,
                                           const ProgressFn& progress = nullptr);
  ~ServedModel();

  ModelInstance& instance() { return *model_; }
  const std::shared_ptr<ModelInstance>& loaded() const { return model_; }
  // Null when the checkpoint has neither tokenizer.json nor tiktoken.model.
  const std::shared_ptr<const Tokenizer>& tokenizer() const { return tokenizer_; }
  // The tokenizer, or Error(kInvalidArgument) saying the model has none.
  const Tokenizer& require_tokenizer() const;
  Engine& engine();
  // A figure of the loaded model by name (moert_model_info_int's keys: vocab_size, context_length,
  // num_layers, hidden_size, num_experts, num_mtp_layers, parameters, kv_bytes_per_token, kv_capacity_tokens,
  // bos_token_id, eos_token_id, ep_rank, ep_size, ep_overlap, and the CPU kernels' paths cpu_isa,
  // cpu_amx_bf16, cpu_amx_int8, cpu_q4_int8); Error(kInvalidArgument) for another key.
  int64_t info_int(const std::string& key) const;
  // The checkpoint's config as moert read it (JSON).
  std::string config_json() const;
  // generation_config.json's sampling defaults (empty when the checkpoint has none).
  const GenerationDefaults& generation_defaults() const { return generation_defaults_; }

 private:
  ServedModel() = default;
  std::shared_ptr<ModelInstance> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::string tokenizer_error_;  // why a tiktoken.model could not be used (then tokenizer_ is null)
  GenerationDefaults generation_defaults_;
  std::mutex engine_mu_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace moert
