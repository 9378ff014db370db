// moert_model_* and moert_session_*: translate to runtime/engine.
#include <cstring>
#include <memory>

#include "checkpoint/checkpoint_quantize.h"
#include "checkpoint/random_checkpoint.h"
#include "handles.h"
#include "option_values.h"

using moert::ErrorCode;
using moert::fail;
using moert::capi::guarded;
using moert::capi::require;
using moert::capi::write_string;

extern "C" {

MOERT_API moert_status moert_model_load(const char* model_dir, const moert_options* options,
                                        moert_progress_fn progress, void* user_data, moert_model** out) {
  return guarded([&] {
    require(model_dir, "model_dir");
    require(out, "out");
    moert::ProgressFn fn;
    if (progress) fn = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    auto m = std::make_unique<moert_model>();
    m->service = moert::ServedModel::load(model_dir, moert::capi::load_options(options), fn);
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
    model->service->instance().require_direct_forward();  // a session evaluates directly
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
    moert::RandomCheckpointSpec s = moert::capi::checkpoint_spec(shape);
    if (progress)
      s.progress = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    moert::write_random_checkpoint(dir, s);
  });
}

MOERT_API moert_status moert_checkpoint_quantize(const char* model_dir, const char* out_dir,
                                                 const moert_options* options, moert_progress_fn progress,
                                                 void* user_data) {
  return guarded([&] {
    require(model_dir, "model_dir");
    require(out_dir, "out_dir");
    moert::QuantizeSpec s = moert::capi::quantize_spec(options);
    if (progress)
      s.progress = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    moert::quantize_checkpoint(model_dir, out_dir, s);
  });
}

}  // extern "C"
