#include "engine/loaded_model.h"

#include "util/error.h"
#ifdef MOERT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace moert {

std::shared_ptr<LoadedModel> LoadedModel::load(const std::string& dir, const LoadOptions& opts,
                                               const ProgressFn& progress) {
  auto step = [&](double f, const char* stage) {
    if (progress && !progress(f, stage)) fail(ErrorCode::kCancelled, "model load cancelled");
  };
  std::shared_ptr<LoadedModel> m(new LoadedModel());
  m->dir_ = dir;
  m->opts_ = opts;
  step(0.0, "config");
  m->cfg_ = load_model_config(dir);
  step(0.05, "weights");
  m->store_ = std::make_shared<WeightStore>(dir);
  step(0.5, "binding");
  if (opts.device == "cpu") {
    m->backend_ = make_cpu_backend(opts.threads);
#ifdef MOERT_HAVE_CUDA
  } else if (opts.device == "cuda") {
    m->backend_ = make_cuda_backend(0);
#endif
  } else {
    fail(ErrorCode::kUnsupported, "device \"" + opts.device + "\" is not available in this build");
  }
  ModelOptions mo;
  mo.act_mode = opts.act_mode;
  mo.attention = opts.attention;
  mo.load_mtp = opts.load_mtp;
  m->model_ = std::make_unique<DeepseekModel>(m->cfg_, m->store_, *m->backend_, mo);
  step(0.9, "kv cache");
  m->cache_ = std::make_unique<LatentCache>(*m->backend_, m->model_->cache_layers(), m->cfg_.kv_cache_width(),
                                            opts.page_rows, opts.kv_cache_bytes);
  step(1.0, "ready");
  return m;
}

}  // namespace moert
