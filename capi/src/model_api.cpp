// moert_model_* and moert_session_*: translate to runtime/engine.
#include <cstring>
#include <memory>

#include "handles.h"
#include "kv/kv_transfer.h"
#include "model/random_checkpoint.h"
#include "option_values.h"

using moert::ErrorCode;
using moert::fail;
using moert::capi::guarded;
using moert::capi::require;
using moert::capi::write_string;

namespace moert::capi {

moert::KvSequence import_image(moert_model* model, const void* data, size_t size,
                               std::vector<int32_t>* tokens, std::vector<float>* logits) {
  moert::LoadedModel& m = model->service->model();
  const moert::KvImageView v = moert::parse_kv_image(data, size, m.kv_image_shape());
  moert::KvSequence kv(&m.cache());
  {
    std::lock_guard<std::mutex> lock(m.step_mutex());
    moert::import_kv(m.model().backend(), m.cache(), kv, m.config().num_hidden_layers, v);
  }
  *tokens = v.token_ids;
  *logits = v.last_logits;
  return kv;
}

}  // namespace moert::capi

extern "C" {

MOERT_API moert_status moert_model_load(const char* model_dir, const moert_options* options,
                                        moert_progress_fn progress, void* user_data, moert_model** out) {
  return guarded([&] {
    require(model_dir, "model_dir");
    require(out, "out");
    moert::ProgressFn fn;
    if (progress) fn = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    auto m = std::make_unique<moert_model>();
    m->service = moert::ModelService::load(model_dir, moert::capi::load_options(options), fn);
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
    moert::LoadedModel& m = model->service->model();
    const moert::ModelConfig& c = m.config();
    const std::string k = key;
    int64_t v;
    if (k == "vocab_size")
      v = c.vocab_size;
    else if (k == "context_length")
      v = c.max_position_embeddings;
    else if (k == "num_layers")
      v = c.num_hidden_layers;
    else if (k == "hidden_size")
      v = c.hidden_size;
    else if (k == "num_experts")
      v = c.n_routed_experts;
    else if (k == "num_mtp_layers")
      v = static_cast<int64_t>(m.model().weights().mtp.size());
    else if (k == "parameters")
      v = m.model().weights().parameter_count;
    else if (k == "kv_bytes_per_token")
      v = m.cache().bytes_per_token();
    else if (k == "kv_capacity_tokens")
      v = m.cache().capacity_tokens();
    else if (k == "bos_token_id")
      v = c.bos_token_id;
    else if (k == "eos_token_id")
      v = c.eos_token_id;
    else if (k == "ep_rank")
      v = m.ep() ? m.ep()->rank() : 0;
    else if (k == "ep_size")
      v = m.ep() ? m.ep()->size() : 1;
    else if (k == "ep_overlap")
      v = m.ep() && m.ep()->two_microbatches() ? 1 : 0;
    else
      fail(ErrorCode::kInvalidArgument, "unknown model info key '" + k + "'");
    *out = v;
  });
}

MOERT_API moert_status moert_model_config_json(const moert_model* model, char* buf, size_t cap,
                                               size_t* needed) {
  return guarded([&] {
    require(model, "model");
    write_string(moert::model_config_to_json(model->service->model().config()), buf, cap, needed);
  });
}

MOERT_API moert_status moert_session_create(moert_model* model, moert_session** out) {
  return guarded([&] {
    require(model, "model");
    require(out, "out");
    auto s = std::make_unique<moert_session>();
    s->service = model->service;
    s->kv = moert::KvSequence(&s->service->model().cache());
    *out = s.release();
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
    moert::LoadedModel& m = session->service->model();
    const int64_t vocab = m.config().vocab_size;
    const size_t rows = all_logits ? n : 1;
    if (logits_cap < rows * vocab)
      fail(ErrorCode::kInvalidArgument, "logits buffer holds " + std::to_string(logits_cap) + " floats; " +
                                            std::to_string(rows * vocab) + " needed");
    require(logits, "logits");
    m.require_direct_forward();
    // Through the engine's step, batched with whatever generation is running.
    session->service->engine().eval(session->kv, tokens, static_cast<int64_t>(n), all_logits != 0, logits);
    session->tokens.insert(session->tokens.end(), tokens, tokens + n);
    const float* last = logits + (rows - 1) * vocab;
    session->last_logits.assign(last, last + vocab);
  });
}

MOERT_API moert_status moert_session_length(const moert_session* session, int64_t* out) {
  return guarded([&] { *require(out, "out") = require(session, "session")->kv.length(); });
}

MOERT_API moert_status moert_session_truncate(moert_session* session, int64_t length) {
  return guarded([&] {
    require(session, "session");
    if (length < 0) fail(ErrorCode::kInvalidArgument, "length must be >= 0");
    if (length > session->kv.length())
      fail(ErrorCode::kInvalidArgument, "cannot truncate to " + std::to_string(length) +
                                            " tokens: the sequence has " +
                                            std::to_string(session->kv.length()));
    session->kv.truncate(length);
    if (static_cast<size_t>(length) != session->tokens.size()) {
      session->tokens.resize(length);
      session->last_logits.clear();
    }
  });
}

MOERT_API moert_status moert_session_export(const moert_session* session, void* buf, size_t cap,
                                            size_t* needed) {
  return guarded([&] {
    require(session, "session");
    moert::LoadedModel& m = session->service->model();
    if (session->tokens.empty())
      fail(ErrorCode::kInvalidArgument, "the session holds no tokens: nothing to export");
    if (session->last_logits.empty())
      fail(
          ErrorCode::kInvalidArgument,
          "the session was truncated since its last evaluation: evaluate a token before exporting (the image "
          "carries the logits after its last token)");
    std::vector<uint8_t> image;
    {
      std::lock_guard<std::mutex> lock(m.step_mutex());  // backend copies: not while a forward runs
      image = moert::export_kv(m.model().backend(), m.cache(), session->kv, m.config().num_hidden_layers,
                               m.kv_image_shape(), session->tokens, session->last_logits);
    }
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
    model->service->model().require_direct_forward();
    auto s = std::make_unique<moert_session>();
    s->service = model->service;
    s->kv = moert::capi::import_image(model, data, size, &s->tokens, &s->last_logits);
    *out = s.release();
  });
}

MOERT_API moert_status moert_model_logits(moert_model* model, const int32_t* tokens, size_t n, float* logits,
                                          size_t logits_cap) {
  return guarded([&] {
    require(model, "model");
    require(tokens, "tokens");
    if (n == 0) fail(ErrorCode::kInvalidArgument, "n must be at least 1");
    moert::LoadedModel& m = model->service->model();
    const size_t vocab = static_cast<size_t>(m.config().vocab_size);
    if (logits_cap < n * vocab)
      fail(ErrorCode::kInvalidArgument, "logits buffer holds " + std::to_string(logits_cap) + " floats; " +
                                            std::to_string(n * vocab) + " needed");
    require(logits, "logits");
    moert::KvSequence kv(&m.cache());
    m.require_direct_forward();
    model->service->engine().eval(kv, tokens, static_cast<int64_t>(n), true, logits);
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

}  // extern "C"
