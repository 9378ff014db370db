// moert_generate_* and moert_stream_*: requests to the model's engine, tokens pulled from its stream.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>

#include "handles.h"
#include "option_values.h"

using moert::ErrorCode;
using moert::fail;
using moert::capi::guarded;
using moert::capi::require;
using moert::capi::write_string;

namespace {

// A seed for a sampled request that names none: fresh per request, so unseeded runs differ (and the
// stream reports it, so a run can be repeated).
uint64_t fresh_seed() {
  static std::mutex mu;
  static std::mt19937_64 gen(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return gen() >> 2;  // < 2^62: inside the "seed" option's range, so the reported seed can be passed back
}

moert::GenerationParams generation_params(const moert_options* o, const moert::GenerationDefaults& d) {
  return moert::capi::generate_options(o, d, fresh_seed).params;
}

moert_status start(moert_model* model, std::vector<int32_t> prompt, const moert_options* gen,
                   moert_stream** out) {
  return guarded([&] {
    auto s = std::make_unique<moert_stream>();
    s->service = model->service;
    const moert::GenerationParams params = generation_params(gen, model->service->generation_defaults());
    s->seed = params.sampling.seed;
    s->sampled = params.sampling.temperature > 0;
    s->request = model->service->engine().submit(std::move(prompt), params);
    *out = s.release();
  });
}

}  // namespace

extern "C" {

MOERT_API moert_status moert_generate_resume(moert_model* model, const void* data, size_t size,
                                             const moert_options* gen, moert_stream** out) {
  return guarded([&] {
    require(model, "model");
    require(out, "out");
    if (size) require(data, "data");
    auto s = std::make_unique<moert_stream>();
    s->service = model->service;
    const moert::GenerationParams params = generation_params(gen, model->service->generation_defaults());
    moert::Session session = moert::Session::import_image(model->service, data, size);
    s->seed = params.sampling.seed;
    s->sampled = params.sampling.temperature > 0;
    s->request = std::move(session).generate(params);
    *out = s.release();
  });
}

MOERT_API moert_status moert_generate_tokens(moert_model* model, const int32_t* prompt, size_t n,
                                             const moert_options* gen, moert_stream** out) {
  moert_status st = guarded([&] {
    require(model, "model");
    require(out, "out");
    if (n) require(prompt, "prompt");
  });
  if (st != MOERT_OK) return st;
  return start(model, std::vector<int32_t>(prompt, prompt + n), gen, out);
}

MOERT_API moert_status moert_generate_text(moert_model* model, const char* prompt, const moert_options* gen,
                                           moert_stream** out) {
  std::vector<int32_t> ids;
  moert_status st = guarded([&] {
    require(model, "model");
    require(prompt, "prompt");
    require(out, "out");
    ids = model->service->require_tokenizer().encode(prompt);
  });
  if (st != MOERT_OK) return st;
  return start(model, std::move(ids), gen, out);
}

MOERT_API moert_status moert_generate_chat(moert_model* model, const char* messages_json,
                                           const moert_options* gen, moert_stream** out) {
  std::vector<int32_t> ids;
  moert_status st = guarded([&] {
    require(model, "model");
    require(messages_json, "messages_json");
    require(out, "out");
    // Only the prompt's ending is read here: start() reads the rest (and draws the seed).
    const moert::capi::GenerateOptions g = moert::capi::generate_options(gen, {}, nullptr);
    const bool gen_prompt = g.add_generation_prompt;
    const moert::Tokenizer& t = model->service->require_tokenizer();
    // The template writes the BOS token itself; special tokens in it are parsed.
    ids =
        t.encode(t.apply_chat_template(messages_json, gen_prompt), /*add_bos=*/false, /*parse_special=*/true);
  });
  if (st != MOERT_OK) return st;
  return start(model, std::move(ids), gen, out);
}

MOERT_API moert_status moert_stream_next(moert_stream* stream, int32_t timeout_ms, int32_t* token,
                                         int32_t* finish_reason) {
  return guarded([&] {
    require(stream, "stream");
    require(token, "token");
    require(finish_reason, "finish_reason");
    if (!stream->has_final) {
      const auto wait = timeout_ms < 0 ? std::chrono::milliseconds(24ll * 3600 * 1000)
                                       : std::chrono::milliseconds(timeout_ms);
      moert::StreamEvent ev;
      for (;;) {
        const auto r = stream->request->next(&ev, wait);
        if (r == moert::RequestStream::Next::kEvent) break;
        if (r == moert::RequestStream::Next::kTimeout && timeout_ms >= 0)
          fail(ErrorCode::kTimeout, "no token within " + std::to_string(timeout_ms) + " ms");
        if (r == moert::RequestStream::Next::kDone) break;
      }
      stream->current = std::move(ev);
      stream->has_final = stream->current.finish != moert::FinishReason::kNone;
    } else {
      stream->current.token = -1;
      stream->current.text.clear();
      stream->current.has_logprobs = false;
    }
    *token = stream->current.token;
    *finish_reason = static_cast<int32_t>(stream->current.finish);
  });
}

MOERT_API moert_status moert_stream_text(const moert_stream* stream, char* buf, size_t cap, size_t* needed) {
  return guarded([&] { write_string(require(stream, "stream")->current.text, buf, cap, needed); });
}

MOERT_API moert_status moert_stream_logprobs(const moert_stream* stream, float* logprob, int32_t* ids,
                                             float* logprobs, size_t cap, size_t* n) {
  return guarded([&] {
    const moert::StreamEvent& ev = require(stream, "stream")->current;
    if (!ev.has_logprobs)
      fail(ErrorCode::kInvalidArgument,
           ev.token < 0 ? "no token event to give log probabilities for (none read yet, or the final event)"
                        : "the stream was started without the \"logprobs\" generation option");
    const moert::TokenLogprobs& lp = ev.logprobs;
    if (logprob) *logprob = lp.logprob;
    const size_t k = std::min(cap, lp.top_ids.size());
    for (size_t i = 0; i < k; ++i) {
      if (ids) ids[i] = lp.top_ids[i];
      if (logprobs) logprobs[i] = lp.top_logprobs[i];
    }
    if (n) *n = lp.top_ids.size();
  });
}

MOERT_API moert_status moert_stream_cancel(moert_stream* stream) {
  return guarded([&] { require(stream, "stream")->request->cancel(); });
}

MOERT_API moert_status moert_stream_usage(const moert_stream* stream, int64_t* prompt_tokens,
                                          int64_t* generated_tokens, double* time_to_first_token_s,
                                          double* tokens_per_second) {
  return guarded([&] {
    const moert::Usage u = require(stream, "stream")->request->usage();
    if (prompt_tokens) *prompt_tokens = u.prompt_tokens;
    if (generated_tokens) *generated_tokens = u.generated_tokens;
    if (time_to_first_token_s) *time_to_first_token_s = u.time_to_first_token_s;
    if (tokens_per_second) *tokens_per_second = u.tokens_per_second;
  });
}

MOERT_API moert_status moert_stream_info_int(const moert_stream* stream, const char* key, int64_t* out) {
  return guarded([&] {
    const moert_stream& s = *require(stream, "stream");
    const std::string k = require(key, "key");
    require(out, "out");
    if (k == "seed")
      *out = static_cast<int64_t>(s.seed);
    else if (k == "sampled")
      *out = s.sampled ? 1 : 0;
    else
      fail(ErrorCode::kInvalidArgument, "unknown stream info key '" + k + "' (known: seed, sampled)");
  });
}

MOERT_API moert_status moert_stream_counter(const moert_stream* stream, const char* key, int64_t* out) {
  return guarded([&] {
    const moert_stream& s = *require(stream, "stream");
    const std::string k = require(key, "key");
    require(out, "out");
    const moert::Usage u = s.request->usage();
    if (k == "cached_prompt_tokens")
      *out = u.cached_prompt_tokens;
    else if (k == "decode_forwards")
      *out = u.decode_forwards;
    else if (k == "draft_tokens")
      *out = u.draft_tokens;
    else if (k == "accepted_drafts")
      *out = u.accepted_drafts;
    else
      fail(ErrorCode::kInvalidArgument, "unknown stream counter '" + k +
                                            "' (known: cached_prompt_tokens, decode_forwards, draft_tokens, "
                                            "accepted_drafts)");
  });
}

MOERT_API moert_status moert_stream_error(const moert_stream* stream, char* buf, size_t cap, size_t* needed) {
  return guarded([&] {
    // One locked read of the finish reason and its message: the engine may be finishing the request now.
    write_string(require(stream, "stream")->request->error(), buf, cap, needed);
  });
}

MOERT_API void moert_stream_free(moert_stream* stream) {
  if (!stream) return;
  stream->request->cancel();  // the scheduler drops it at its next step and frees its KV pages
  delete stream;
}

}  // extern "C"
