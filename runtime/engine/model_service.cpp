#include "engine/model_service.h"

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

std::shared_ptr<ModelService> ModelService::load(const std::string& dir, const LoadOptions& opts,
                                                 const ProgressFn& progress) {
  std::shared_ptr<ModelService> s(new ModelService());
  s->model_ = LoadedModel::load(dir, opts, progress);
  const std::string tj = dir + "/tokenizer.json", tc = dir + "/tokenizer_config.json";
  if (path_exists(tj))
    s->tokenizer_ = std::make_shared<const Tokenizer>(Tokenizer::load(tj, path_exists(tc) ? tc : ""));
  s->generation_defaults_ = load_generation_defaults(dir);
  // With expert parallelism the engine runs from the start: every rank's engine takes part in every step,
  // whether or not this rank's host ever generates.
  if (s->model_->ep()) s->engine();
  return s;
}

ModelService::~ModelService() {
  engine_.reset();
}  // stop the scheduler before the model goes

const Tokenizer& ModelService::require_tokenizer() const {
  if (!tokenizer_)
    fail(ErrorCode::kInvalidArgument,
         model_->dir() + ": the model has no tokenizer.json; pass token ids instead");
  return *tokenizer_;
}

Engine& ModelService::engine() {
  std::lock_guard<std::mutex> lock(engine_mu_);
  if (!engine_) {
    TextDecoderFactory factory;
    if (tokenizer_) {
      const Tokenizer* t = tokenizer_.get();
      factory = [t] { return std::make_unique<StreamTextDecoder>(*t); };
    }
    engine_ = std::make_unique<Engine>(model_, factory);
  }
  return *engine_;
}

}  // namespace moert
