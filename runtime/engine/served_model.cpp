#include "engine/served_model.h"

#include "util/error.h"
#include "util/file_io.h"

namespace moert {
namespace {

class StreamTextDecoder final : public TokenTextDecoder {
 public:
  explicit StreamTextDecoder(const Tokenizer& t) : dec_(t, /*skip_special=*/true) {}
  std::string push(int32_t token) override { return dec_.push(token); }
  std::string flush() override { return dec_.finish(); }

 private:
  StreamDecoder dec_;
};

}  // namespace

std::shared_ptr<ServedModel> ServedModel::load(const std::string& dir, const LoadOptions& opts,
                                               const ProgressFn& progress) {
  std::shared_ptr<ServedModel> s(new ServedModel());
  s->model_ = ModelInstance::load(dir, opts, progress);
  const std::string tf = Tokenizer::find_in_dir(dir), tc = dir + "/tokenizer_config.json";
  if (!tf.empty()) {
    try {
      s->tokenizer_ = std::make_shared<const Tokenizer>(Tokenizer::load(tf, path_exists(tc) ? tc : ""));
    } catch (const Error& e) {
      // A tiktoken.model whose tokenizer class moert does not know (its pattern lives in that class): the
      // model still runs on token ids, and asking for text says why not. A broken file stays an error.
      if (e.code() != ErrorCode::kUnsupported || !tf.ends_with("/tiktoken.model")) throw;
      s->tokenizer_error_ = e.what();
    }
  }
  s->generation_defaults_ = load_generation_defaults(dir);
  // With expert parallelism the engine runs from the start: every rank's engine takes part in every step,
  // whether or not this rank's host ever generates.
  if (s->model_->ep()) s->engine();
  return s;
}

ServedModel::~ServedModel() {
  engine_.reset();
}  // stop the scheduler before the model goes

const Tokenizer& ServedModel::require_tokenizer() const {
  if (!tokenizer_ && !tokenizer_error_.empty())
    fail(ErrorCode::kUnsupported, model_->dir() + ": the model's tokenizer cannot be used (" +
                                      tokenizer_error_ + "); pass token ids instead");
  if (!tokenizer_)
    fail(ErrorCode::kInvalidArgument,
         model_->dir() +
             ": the model has no tokenizer (tokenizer.json or tiktoken.model); pass token ids instead");
  return *tokenizer_;
}

int64_t ServedModel::info_int(const std::string& k) const {
  ModelInstance& m = *model_;
  const ModelConfig& c = m.config();
  if (k == "vocab_size") return c.vocab_size;
  if (k == "context_length") return c.max_position_embeddings;
  if (k == "num_layers") return c.num_hidden_layers;
  if (k == "hidden_size") return c.hidden_size;
  if (k == "num_experts") return c.n_routed_experts;
  if (k == "num_mtp_layers") return static_cast<int64_t>(m.network().weights().mtp.size());
  if (k == "parameters") return m.network().weights().parameter_count;
  if (k == "kv_bytes_per_token") return m.cache().bytes_per_token();
  if (k == "kv_capacity_tokens") return m.cache().capacity_tokens();
  if (k == "bos_token_id") return c.bos_token_id;
  if (k == "eos_token_id") return c.eos_token_id;
  if (k == "ep_rank") return m.ep() ? m.ep()->rank() : 0;
  if (k == "ep_size") return m.ep() ? m.ep()->size() : 1;
  if (k == "ep_overlap") return m.ep() && m.ep()->two_microbatches() ? 1 : 0;
  if (int64_t v = 0; m.backend().path_info(k, &v)) return v;
  fail(ErrorCode::kInvalidArgument, "unknown model info key '" + k + "'");
}

std::string ServedModel::config_json() const {
  return model_config_to_json(model_->config());
}

Engine& ServedModel::engine() {
  std::lock_guard<std::mutex> lock(engine_mu_);
  if (!engine_) {
    TextDecoderFactory factory;
    if (tokenizer_) {
      const Tokenizer* t = tokenizer_.get();
      factory = [t] { return std::make_unique<StreamTextDecoder>(*t); };
    }
    engine_ = std::make_unique<Engine>(model_, factory, generation_defaults_.eos_token_ids);
  }
  return *engine_;
}

}  // namespace moert
