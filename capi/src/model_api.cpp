// moert_model_* and moert_session_*: translate to runtime/engine.
#include <cstring>
#include <memory>

#include "handles.h"
#include "kv/kv_transfer.h"
#include "model/random_checkpoint.h"
#include "options.h"
#include "weights/checkpoint_quantize.h"

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

MOERT_API moert_status moert_checkpoint_quantize(const char* model_dir, const char* out_dir,
                                                 const moert_options* options, moert_progress_fn progress,
                                                 void* user_data) {
  return guarded([&] {
    require(model_dir, "model_dir");
    require(out_dir, "out_dir");
    moert::capi::options_require_scope(options, moert::capi::OptionScope::kQuantize);
    moert::QuantizeSpec s;
    if (options) {
      s.group = options->get_int("quantize.group_size", s.group);
      s.threads = static_cast<int>(options->get_int("quantize.threads", 0));
    }
    if (s.group != 32 && s.group != 64 && s.group != 128)
      fail(ErrorCode::kInvalidArgument,
           "option 'quantize.group_size' value " + std::to_string(s.group) + " is not one of 32, 64, 128");
    if (progress)
      s.progress = [&](double f, const char* stage) { return progress(user_data, f, stage) == 0; };
    moert::quantize_checkpoint(model_dir, out_dir, s);
  });
}

}  // extern "C"
