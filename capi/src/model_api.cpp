// moert_model_* and moert_session_*: translate to runtime/engine.
#include <cstring>
#include <memory>

#include "checkpoint/random_checkpoint.h"
#include "handles.h"
#include "options.h"

using moert::ErrorCode;
using moert::fail;
using moert::capi::guarded;
using moert::capi::require;
using moert::capi::write_string;

namespace {

moert::LoadOptions load_options(const moert_options* o) {
  moert::LoadOptions lo;
  if (!o) return lo;
  lo.threads = static_cast<int>(o->get_int("threads", 0));
  lo.device = o->get_string("device", "cpu");
  lo.act_mode = o->get_string("activations", "fp32") == "fp8" ? moert::ActMode::kFp8 : moert::ActMode::kF32;
  lo.kv_cache_bytes = o->get_int("kv_cache_bytes", lo.kv_cache_bytes);
  lo.max_batch = o->get_int("max_batch", lo.max_batch);
  const std::string att = o->get_string("attention", "auto");
  lo.attention = att == "expanded"   ? moert::AttentionForm::kExpanded
                 : att == "absorbed" ? moert::AttentionForm::kAbsorbed
                                     : moert::AttentionForm::kAuto;
  lo.load_mtp = o->get_int("mtp", 1) != 0;
  lo.batch_invariant = o->get_int("batch_invariant", 0) != 0;
  lo.cuda_graphs = o->get_int("cuda_graphs", 1) != 0;
  lo.kv_cache_dtype = o->get_string("kv_cache_dtype", "auto");
  lo.ep_size = static_cast<int>(o->get_int("ep_size", 1));
  lo.ep_transport = o->get_string("ep_transport", "");
  lo.ep_redundant = static_cast<int>(o->get_int("ep_redundant", 0));
  lo.eplb_interval = o->get_int("eplb_interval", 0);
  lo.ep_overlap = static_cast<int>(o->get_int("ep_overlap", -1));
  lo.ep_max_ranks_per_token = static_cast<int>(o->get_int("ep_max_ranks_per_token", 0));
  lo.ep_timeout_ms = o->get_int("ep_timeout_ms", lo.ep_timeout_ms);
  lo.check_weights = o->get_int("check_weights", 1) != 0;
  lo.prefix_cache = o->get_int("prefix_cache", 1) != 0;
  lo.speculative = o->get_string("speculative", "auto");
  lo.draft_tokens = o->get_int("draft_tokens", 1);
  return lo;
}

}  // namespace

extern "C" {

MOERT_API moert_status moert_model_load(const char* model_dir, const moert_options* options,
                                        moert_progress_fn progress, void* user_data, moert_model** out) {
  return guarded([&] {
    require(model_dir, "model_dir");
    require(out, "out");
    moert::capi::options_require_scope(options, moert::capi::OptionScope::kLoad);
    moert::ProgressFn fn;
    if (progress) fn = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    auto m = std::make_unique<moert_model>();
    m->service = moert::ModelService::load(model_dir, load_options(options), fn);
    *out = m.release();
  });
}

MOERT_API void moert_model_free(moert_model* model) {
  delete model;
}

MOERT_API moert_status moert_model_info_int(const moert_model* model, const char* key, int64_t* out) {
  return guarded([&] {
    require(model, "model");
    require(key, "key");
    require(out, "out");
    *out = model->service->info_int(key);
  });
}

MOERT_API moert_status moert_model_config_json(const moert_model* model, char* buf, size_t cap,
                                               size_t* needed) {
  return guarded([&] {
    require(model, "model");
    write_string(model->service->config_json(), buf, cap, needed);
  });
}

MOERT_API moert_status moert_session_create(moert_model* model, moert_session** out) {
  return guarded([&] {
    require(model, "model");
    require(out, "out");
    *out = new moert_session{moert::Session(model->service)};
  });
}

MOERT_API void moert_session_free(moert_session* session) {
  delete session;
}

MOERT_API moert_status moert_session_eval(moert_session* session, const int32_t* tokens, size_t n,
                                          int32_t all_logits, float* logits, size_t logits_cap) {
  return guarded([&] {
    require(session, "session");
    require(tokens, "tokens");
    if (n == 0) fail(ErrorCode::kInvalidArgument, "n must be at least 1");
    const int64_t vocab = session->session.vocab_size();
    const size_t rows = all_logits ? n : 1;
    if (logits_cap < rows * vocab)
      fail(ErrorCode::kInvalidArgument, "logits buffer holds " + std::to_string(logits_cap) + " floats; " +
                                            std::to_string(rows * vocab) + " needed");
    require(logits, "logits");
    session->session.eval(tokens, static_cast<int64_t>(n), all_logits != 0, logits);
  });
}

MOERT_API moert_status moert_session_length(const moert_session* session, int64_t* out) {
  return guarded([&] { *require(out, "out") = require(session, "session")->session.length(); });
}

MOERT_API moert_status moert_session_truncate(moert_session* session, int64_t length) {
  return guarded([&] {
    require(session, "session");
    session->session.truncate(length);
  });
}

MOERT_API moert_status moert_session_export(const moert_session* session, void* buf, size_t cap,
                                            size_t* needed) {
  return guarded([&] {
    require(session, "session");
    const std::vector<uint8_t> image = session->session.export_image();
    if (needed) *needed = image.size();
    if (!buf && cap == 0) return;
    require(buf, "buf");
    if (cap < image.size())
      fail(ErrorCode::kInvalidArgument, "buffer of " + std::to_string(cap) + " bytes is too small; " +
                                            std::to_string(image.size()) + " needed");
    std::memcpy(buf, image.data(), image.size());
  });
}

MOERT_API moert_status moert_session_import(moert_model* model, const void* data, size_t size,
                                            moert_session** out) {
  return guarded([&] {
    require(model, "model");
    require(out, "out");
    if (size) require(data, "data");
    *out = new moert_session{moert::Session::import_image(model->service, data, size)};
  });
}

MOERT_API moert_status moert_model_logits(moert_model* model, const int32_t* tokens, size_t n, float* logits,
                                          size_t logits_cap) {
  return guarded([&] {
    require(model, "model");
    require(tokens, "tokens");
    if (n == 0) fail(ErrorCode::kInvalidArgument, "n must be at least 1");
    moert::Session session(model->service);
    const size_t vocab = static_cast<size_t>(session.vocab_size());
    if (logits_cap < n * vocab)
      fail(ErrorCode::kInvalidArgument, "logits buffer holds " + std::to_string(logits_cap) + " floats; " +
                                            std::to_string(n * vocab) + " needed");
    require(logits, "logits");
    session.eval(tokens, static_cast<int64_t>(n), true, logits);
  });
}

MOERT_API moert_status moert_checkpoint_write_random(const char* dir, const moert_options* shape) {
  return moert_checkpoint_write_random_v2(dir, shape, nullptr, nullptr);
}

MOERT_API moert_status moert_checkpoint_write_random_v2(const char* dir, const moert_options* shape,
                                                        moert_progress_fn progress, void* user_data) {
  return guarded([&] {
    require(dir, "dir");
    moert::capi::options_require_scope(shape, moert::capi::OptionScope::kShape);
    moert::RandomCheckpointSpec s;
    if (progress)
      s.progress = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    if (shape) {
      const moert_options& o = *shape;
      s.vocab = o.get_int("model.vocab", s.vocab);
      s.hidden = o.get_int("model.hidden", s.hidden);
      s.intermediate = o.get_int("model.intermediate", s.intermediate);
      s.moe_intermediate = o.get_int("model.moe_intermediate", s.moe_intermediate);
      s.layers = o.get_int("model.layers", s.layers);
      s.dense_layers = o.get_int("model.dense_layers", s.dense_layers);
      s.heads = o.get_int("model.heads", s.heads);
      s.q_lora = o.get_int("model.q_lora", s.q_lora);
      s.kv_lora = o.get_int("model.kv_lora", s.kv_lora);
      s.experts = o.get_int("model.experts", s.experts);
      s.top_k = o.get_int("model.top_k", s.top_k);
      s.n_group = o.get_int("model.groups", s.n_group);
      s.topk_group = o.get_int("model.topk_groups", s.topk_group);
      s.shared = o.get_int("model.shared", s.shared);
      s.mtp = o.get_int("model.mtp", s.mtp);
      s.fp8 = o.get_int("model.fp8", 1) != 0;
      s.seed = static_cast<uint64_t>(o.get_int("model.seed", 1));
    }
    if (s.dense_layers > s.layers)
      fail(ErrorCode::kInvalidArgument, "model.dense_layers exceeds model.layers");
    if (s.experts && (s.experts % s.n_group || s.topk_group > s.n_group || s.top_k > s.experts ||
                      s.top_k > s.topk_group * (s.experts / s.n_group) || s.experts / s.n_group < 2))
      fail(ErrorCode::kInvalidArgument, "inconsistent routing shape: experts " + std::to_string(s.experts) +
                                            ", groups " + std::to_string(s.n_group) + ", topk_groups " +
                                            std::to_string(s.topk_group) + ", top_k " +
                                            std::to_string(s.top_k));
    moert::write_random_checkpoint(dir, s);
  });
}

}  // extern "C"
