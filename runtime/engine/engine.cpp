#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "backend/finite_check.h"
#include "engine/request_state.h"
#include "engine/speculative.h"
#include "engine/step_policy.h"
#include "ep/placement.h"

#include "util/error.h"

namespace moert {

struct Engine::EvalJob {
  SequenceStep step;
  float* logits = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<Error> error;
  // The error is copied into the job as code and message, never handed over as the exception itself: the
  // engine thread's exception object (and the message buffer its copies share) would be released there
  // while the waiter still reads it.
  void finish(std::exception_ptr e = nullptr) {
    std::optional<Error> err;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const Error& x) {
        err.emplace(x.code(), std::string(x.what()));
      } catch (const std::bad_alloc&) {
        err.emplace(ErrorCode::kOutOfMemory, std::string("out of memory"));
      } catch (const std::exception& x) {
        err.emplace(ErrorCode::kInternal, std::string(x.what()));
      } catch (...) {
        err.emplace(ErrorCode::kInternal, std::string("unknown error"));
      }
    }
    // Notified under the lock: the waiter owns the job (on its stack) and may destroy it as soon as it
    // sees `done`, so the notify must not outlive the critical section.
    std::lock_guard<std::mutex> lock(mu);
    error = std::move(err);
    done = true;
    cv.notify_all();
  }
};

Engine::Engine(std::shared_ptr<ModelInstance> model, TextDecoderFactory decoders,
               std::vector<int64_t> extra_eos)
    : model_(std::move(model)), decoders_(std::move(decoders)) {
  std::vector<int64_t> eos = model_->config().eos_token_ids;
  eos.insert(eos.end(), extra_eos.begin(), extra_eos.end());
  for (int64_t id : eos)
    if (std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end())
      eos_ids_.push_back(static_cast<int32_t>(id));
  const LoadOptions& o = model_->options();
  // "auto" drafts where it pays: on a GPU the verify step's second token costs little; on the CPU it reads
  // other experts too and the MTP layer adds half a step, ~2x a plain step for ~1.6 tokens (RESULTS.md).
  const bool wanted = o.speculative == "on" || (o.speculative == "auto" && o.device == "cuda");
  if (wanted && model_->network().has_mtp() && !model_->ep()) draft_tokens_ = o.draft_tokens;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<RequestStream> Engine::submit(std::vector<int32_t> prompt, GenerationParams params) {
  std::unique_ptr<RequestState> r = make_request(std::move(prompt), std::move(params));
  std::shared_ptr<RequestStream> stream = r->stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(r));
  }
  cv_.notify_all();
  return stream;
}

std::unique_ptr<RequestState> Engine::make_request(std::vector<int32_t> prompt, GenerationParams params) {
  const ModelConfig& cfg = model_->config();
  if (prompt.empty()) fail(ErrorCode::kInvalidArgument, "the prompt has no tokens");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= cfg.vocab_size)
      fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(prompt[i]) + " at position " +
                                            std::to_string(i) + " is outside the vocabulary [0, " +
                                            std::to_string(cfg.vocab_size) + ")");
  if (static_cast<int64_t>(prompt.size()) >= cfg.max_position_embeddings)
    fail(ErrorCode::kInvalidArgument, "prompt of " + std::to_string(prompt.size()) +
                                          " tokens leaves no room in the context length " +
                                          std::to_string(cfg.max_position_embeddings));
  if (params.max_tokens < 0) fail(ErrorCode::kInvalidArgument, "max_tokens must be >= 0");
  for (const auto& [t, b] : params.sampling.logit_bias)
    if (t < 0 || t >= cfg.vocab_size || !std::isfinite(b))
      fail(ErrorCode::kInvalidArgument,
           "logit_bias: token id " + std::to_string(t) +
               (std::isfinite(b) ? " is outside the vocabulary [0, " + std::to_string(cfg.vocab_size) + ")"
                                 : " has a bias that is not finite"));
  auto r = std::make_unique<RequestState>();
  r->stream = std::make_shared<RequestStream>(static_cast<int64_t>(prompt.size()));
  r->prompt = std::move(prompt);
  r->params = std::move(params);
  r->kv = KvSequence(&model_->cache());
  r->rng = SamplingRng(r->params.sampling.seed);
  r->history.add_prompt(r->prompt);
  if (decoders_) r->decoder = decoders_();
  r->stops = std::make_unique<StopMatcher>(r->params.stop_strings);
  // Drafts are verified against the plain distribution; penalties would need each draft in the history.
  r->speculative = speculative() && r->params.sampling.repetition_penalty == 1.0 &&
                   r->params.sampling.presence_penalty == 0.0 && r->params.sampling.frequency_penalty == 0.0;
  return r;
}

std::shared_ptr<RequestStream> Engine::submit_resumed(std::vector<int32_t> tokens, KvSequence kv,
                                                      std::vector<float> last_logits,
                                                      GenerationParams params) {
  if (kv.cache() != &model_->cache() || kv.length() != static_cast<int64_t>(tokens.size()))
    fail(ErrorCode::kInternal, "submit_resumed: the sequence must hold exactly the tokens");
  if (static_cast<int64_t>(last_logits.size()) != model_->config().vocab_size)
    fail(ErrorCode::kInvalidArgument, "a resumed sequence needs the logits of its last token");
  // Checked (and queued) as a request of this prompt, then given its cache before it first steps.
  std::shared_ptr<RequestStream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);  // the scheduler must not see it before its state is complete
    std::unique_ptr<RequestState> r = make_request(std::move(tokens), std::move(params));
    r->kv = std::move(kv);
    r->prefilled = static_cast<int64_t>(r->prompt.size());
    r->prefix_looked_up = true;
    r->resume_logits = std::move(last_logits);
    r->resumed = true;
    stream = r->stream;
    queue_.push_back(std::move(r));
  }
  cv_.notify_all();
  return stream;
}

void Engine::eval(KvSequence& kv, const int32_t* tokens, int64_t n, bool all_logits, float* logits) {
  if (model_->ep())
    fail(ErrorCode::kUnsupported, "direct evaluation is not available with expert parallelism");
  EvalJob job;
  job.step.kv = &kv;
  job.step.tokens = tokens;
  job.step.n = n;
  job.step.all_logits = all_logits;
  job.logits = logits;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) fail(ErrorCode::kCancelled, "the engine is stopping");
    evals_.push_back(&job);
  }
  cv_.notify_all();
  std::unique_lock<std::mutex> lock(job.mu);
  job.cv.wait(lock, [&] { return job.done; });
  if (job.error) fail(job.error->code(), std::string(job.error->what()));
}

void Engine::admit_queued(Running& running) {
  while (!queue_.empty() && static_cast<int64_t>(running.size()) < model_->options().max_batch) {
    std::unique_ptr<RequestState> r = std::move(queue_.front());
    queue_.pop_front();
    if (r->stream->cancelled())
      finish(*r, FinishReason::kCancelled);
    else if (r->params.max_tokens == 0)
      finish(*r, FinishReason::kLength);
    else
      running.push_back(std::move(r));
  }
}

void Engine::finish(RequestState& r, FinishReason why, const std::string& error) {
  StreamEvent ev;
  ev.finish = why;
  deliver(r, std::move(ev), error);
}

void Engine::attach_prefix(RequestState& r) {
  r.prefix_looked_up = true;
  LatentCache& cache = model_->cache();
  if (!cache.prefix_cache() || r.kv.length() != 0) return;
  int64_t got = 0;
  {
    // A page matched in part is copied with backend ops: not while a forward runs.
    std::lock_guard<std::mutex> lock(model_->step_mutex());
    got = cache.attach_prefix(r.kv, r.prompt.data(), static_cast<int64_t>(r.prompt.size()) - 1);
  }
  if (r.speculative && got > 0) {
    // The MTP layer's entry at the last cached position depends on the token after it, which may differ
    // here: that position is computed again (its page copied before it is written).
    r.kv.truncate(--got);
  }
  r.prefilled = got;
  r.stream->count_cached(got);
}

void Engine::publish(RequestState& r) {
  LatentCache& cache = model_->cache();
  const int64_t len = r.kv.length();
  if (!cache.prefix_cache() || len < r.kv.page_rows()) return;
  // With speculation cached pages carry the MTP layer's entries too: only requests that wrote them publish
  // (a resumed request's image carries the main layers alone, so its prompt pages have no MTP entries).
  if (speculative() && (!r.speculative || r.resumed)) return;
  std::vector<int32_t> tokens(r.prompt.begin(), r.prompt.begin() + std::min<int64_t>(len, r.prompt.size()));
  for (size_t i = 0; static_cast<int64_t>(tokens.size()) < len && i < r.output.size(); ++i)
    tokens.push_back(r.output[i]);
  if (static_cast<int64_t>(tokens.size()) == len) cache.publish(r.kv, tokens.data());
}

void Engine::deliver(RequestState& r, StreamEvent ev, const std::string& error) {
  const bool final = ev.finish != FinishReason::kNone;
  if (final && ev.finish != FinishReason::kError && r.kv.cache()) publish(r);
  if (final) r.kv = KvSequence();  // return the pages to the shared budget now
  if (final) r.finished = true;
  r.stream->deliver(std::move(ev), error);
}

void Engine::emit(RequestState& r, int32_t token, TokenLogprobs* logprobs) {
  const GenerationParams& p = r.params;
  r.history.add_output(token);
  r.output.push_back(token);
  StreamEvent ev;
  ev.token = token;
  if (logprobs) {
    ev.has_logprobs = true;
    ev.logprobs = std::move(*logprobs);
  }
  const bool eos = !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  const bool stop_id =
      std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  bool stopped = false;
  if (eos || stop_id) {
    // The stop token itself is not text; whatever was held back is released.
    if (r.decoder) ev.text = r.stops->push(r.decoder->flush(), &stopped);
    if (!stopped) ev.text += r.stops->flush();
    ev.finish = eos ? FinishReason::kEos : FinishReason::kStop;
  } else {
    if (r.decoder) ev.text = r.stops->push(r.decoder->push(token), &stopped);
    if (stopped) {
      ev.finish = FinishReason::kStop;
    } else if (r.generated() >= p.max_tokens) {  // output holds this token already
      if (r.decoder) ev.text += r.stops->push(r.decoder->flush(), &stopped);
      if (!stopped) ev.text += r.stops->flush();
      ev.finish = stopped ? FinishReason::kStop : FinishReason::kLength;
    }
  }
  deliver(r, std::move(ev), "");
}

void Engine::end_running(Running& running, FinishReason why, const std::string& error) {
  for (auto& r : running)
    if (!r->finished) finish(*r, why, error);
  running.clear();
}

void Engine::end_all(Running& running, FinishReason why, const std::string& error) {
  end_running(running, why, error);
  for (auto& r : queue_) finish(*r, why, error);
  queue_.clear();
  const ErrorCode code = why == FinishReason::kCancelled ? ErrorCode::kCancelled : ErrorCode::kInternal;
  for (EvalJob* j : evals_)
    j->finish(std::make_exception_ptr(
        Error(code, why == FinishReason::kCancelled ? "the engine is stopping" : error)));
  evals_.clear();
}

// One loop for a model alone and for a rank of an expert-parallel group; the StepPolicy says when to step.
// Alone, the loop sleeps until there is work and exits as soon as it is stopping. In a group every forward is
// collective: the ranks agree before each step, a rank with nothing to run steps with no sequence, and a
// stopping rank cancels its own requests and keeps stepping while the others have work. A failed collective
// (a rank that failed or stopped answering) fails the group: running and later requests end with its error.
void Engine::loop() {
  const std::unique_ptr<StepPolicy> policy = model_->ep() ? make_group_policy(*model_) : make_solo_policy();
  Running running;
  std::vector<EvalJob*> evals;
  std::string group_error;
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!group_error.empty()) {
        // The group failed: no more collectives; requests fail at once.
        cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !evals_.empty(); });
        end_all(running, FinishReason::kError, group_error);
        if (stop_) return;
        continue;
      }
      if (!policy->collective())
        cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !running.empty() || !evals_.empty(); });
      stopping = stop_;
      if (stopping) end_all(running, FinishReason::kCancelled, "");
      evals.assign(evals_.begin(), evals_.end());
      evals_.clear();
      admit_queued(running);
    }
    try {
      const StepPolicy::Decision d = policy->agree(!running.empty() || !evals.empty(), stopping);
      if (d == StepPolicy::Decision::kExit) return;
      if (d == StepPolicy::Decision::kIdle) {
        if (policy->collective()) {
          // Nobody in the group has work: wait a little for local work, then ask again.
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait_for(lock, std::chrono::milliseconds(1),
                       [&] { return !stopping && (stop_ || !queue_.empty()); });
        }
        continue;
      }
      step(running, std::move(evals), policy->collective());
      evals.clear();
      policy->after_step();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (policy->collective()) {
        group_error = e.what();  // the group is gone
        end_all(running, FinishReason::kError, group_error);
      } else {
        // Alone, a step fails its own requests (its evaluations are answered inside step): later ones still
        // run.
        end_running(running, FinishReason::kError, e.what());
      }
      continue;
    }
    running.erase(std::remove_if(running.begin(), running.end(),
                                 [](const std::unique_ptr<RequestState>& r) { return r->finished; }),
                  running.end());
  }
}

// A step's requests in the order the batch lays out their logits: first those sampled by the backend's
// sampler (one row each, or none for a prompt chunk before the last), then the speculative verify steps
// (1 + drafts rows each, accepted on the host), then the evaluation jobs.
struct Engine::StepPlan {
  std::vector<SequenceStep> steps;
  std::vector<RequestState*> reqs;  // steps[i]'s request (requests only, in the steps' order)
  std::vector<int64_t> past;        // each request's cache length before the step
  std::vector<int64_t> row;         // each request's first row in the forward's batch
  size_t n_plain = 0;               // reqs [0, n_plain) sample one row; the others verify drafts
  std::vector<std::pair<RequestState*, std::string>> blocked;  // waiting for KV pages, with the reason
};

void Engine::plan(Running& running, StepPlan& p) {
  const ModelConfig& cfg = model_->config();
  std::vector<std::pair<SequenceStep, RequestState*>> plain, verify;
  int64_t budget = prefill_chunk_;
  for (auto& rp : running) {
    RequestState& r = *rp;
    if (r.stream->cancelled()) {
      finish(r, FinishReason::kCancelled);
      continue;
    }
    if (!r.prefix_looked_up) attach_prefix(r);
    if (!r.resume_logits.empty()) {
      // A resumed sequence: its first token from the logits it came with, then it decodes like any other.
      const std::vector<float> logits = std::move(r.resume_logits);
      r.resume_logits.clear();
      const int32_t t =
          first_non_finite(logits.data(), cfg.vocab_size) >= 0
              ? -1
              : sample_token(logits.data(), cfg.vocab_size, r.params.sampling, r.rng, &r.history);
      if (t < 0) {
        finish(r, FinishReason::kError, "the resumed sequence's logits are not finite");
        continue;
      }
      r.last_token = t;
      TokenLogprobs lp;
      if (r.params.logprobs >= 0) lp = token_logprobs(logits.data(), cfg.vocab_size, t, r.params.logprobs);
      emit(r, t, r.params.logprobs >= 0 ? &lp : nullptr);
      if (r.finished) continue;
    }
    SequenceStep st;
    st.kv = &r.kv;
    const int64_t plen = static_cast<int64_t>(r.prompt.size());
    if (r.prefilled < plen) {
      // Chunked prefill: at most `budget` prompt tokens per step across requests, so decodes keep flowing.
      st.n = std::min(plen - r.prefilled, budget);
      if (st.n <= 0) continue;
      st.tokens = r.prompt.data() + r.prefilled;
      st.no_logits = r.prefilled + st.n < plen;  // a chunk before the prompt's last samples nothing
    } else {
      // Drafts past the context or past max_tokens would be thrown away: fewer are fed.
      const int64_t room =
          std::min(cfg.max_position_embeddings - r.kv.length() - 1, r.params.max_tokens - r.generated() - 1);
      if (static_cast<int64_t>(r.drafts.size()) > std::max<int64_t>(room, 0))
        r.drafts.resize(std::max<int64_t>(room, 0));
      r.feed.assign(1, r.last_token);
      r.feed.insert(r.feed.end(), r.drafts.begin(), r.drafts.end());
      st.n = static_cast<int64_t>(r.feed.size());
      st.tokens = r.feed.data();
      st.all_logits = st.absorbed = st.n > 1;
    }
    if (r.kv.length() + st.n > cfg.max_position_embeddings) {
      finish(r, FinishReason::kLength);
      continue;
    }
    try {
      r.kv.reserve(st.n);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kOutOfMemory) throw;
      p.blocked.emplace_back(&r, e.what());
      continue;
    }
    if (r.prefilled < plen) budget -= st.n;
    (st.all_logits ? verify : plain).emplace_back(st, &r);
  }
  p.n_plain = plain.size();
  for (auto* list : {&plain, &verify})
    for (auto& [st, r] : *list) {
      p.steps.push_back(st);
      p.reqs.push_back(r);
      p.past.push_back(r->kv.length());
    }
}

void Engine::draft(StepPlan& p, const Tensor& hidden, const std::vector<std::vector<int32_t>>& emitted) {
  DeepseekNetwork& model = model_->network();
  std::vector<SequenceStep> mtp;
  std::vector<int64_t> pos0, hidden_row;
  std::vector<RequestState*> drafting;
  for (size_t i = 0; i < p.reqs.size(); ++i) {
    RequestState& r = *p.reqs[i];
    if (!r.speculative) continue;
    const SequenceStep& st = p.steps[i];
    // The MTP layer at position q reads h_q and the token at q + 1: over a prompt chunk, the prompt's next
    // tokens (and the sampled token after the prompt's last); after a decode, the kept tokens.
    r.mtp_next.clear();
    int64_t n = 0;
    const bool prefill = p.past[i] < static_cast<int64_t>(r.prompt.size());
    bool bad = false;
    for (int32_t t : emitted[i]) bad |= t < 0;
    if (bad) continue;  // the request ends with its error
    bool draws = true;
    if (prefill) {
      const int64_t s = p.past[i], plen = static_cast<int64_t>(r.prompt.size());
      draws = s + st.n == plen;
      r.mtp_next.assign(r.prompt.begin() + s + 1, r.prompt.begin() + std::min(s + st.n + 1, plen));
      if (s + st.n == plen) {
        if (emitted[i].empty()) continue;
        r.mtp_next.push_back(emitted[i][0]);
      }
      n = st.n;
    } else {
      if (emitted[i].empty()) continue;
      r.mtp_next = emitted[i];  // the kept drafts, then the main model's token
      n = static_cast<int64_t>(emitted[i].size());
    }
    SequenceStep m;
    m.kv = &r.kv;
    m.tokens = r.mtp_next.data();
    m.n = n;
    m.no_logits = !draws;   // a prompt chunk before the last only fills the MTP layer's cache
    m.absorbed = !prefill;  // as the verify step it follows
    mtp.push_back(m);
    pos0.push_back(p.past[i]);
    hidden_row.push_back(p.row[i]);
    if (!m.no_logits) drafting.push_back(&r);
    r.drafts.clear();
  }
  if (mtp.empty()) return;
  Backend& b = model.backend();
  Tensor mtp_hidden;
  std::vector<int64_t> rows_of;
  Tensor logits = model.mtp_forward(mtp, pos0, hidden_row, hidden, &mtp_hidden, &rows_of);
  for (int64_t depth = 0; depth < draft_tokens_ && !drafting.empty(); ++depth) {
    SamplingRng unused;  // greedy draws nothing
    std::vector<SampleRow> greedy(drafting.size(), SampleRow{SamplingParams{}, &unused, nullptr});
    std::vector<int32_t> ids(drafting.size());
    b.sample(logits.slice_rows(0, static_cast<int64_t>(drafting.size())), greedy, nullptr, ids.data());
    for (size_t k = 0; k < drafting.size(); ++k)
      if (ids[k] >= 0) drafting[k]->drafts.push_back(ids[k]);
    if (depth + 1 == draft_tokens_) break;
    // The next link: the MTP layer at the drafted position, fed its own output for the hidden state.
    std::vector<SequenceStep> chain;
    std::vector<int64_t> cpos, crow;
    std::vector<RequestState*> next;
    size_t k = 0;
    for (size_t j = 0; j < mtp.size(); ++j) {
      if (mtp[j].no_logits) continue;
      RequestState& r = *drafting[k++];
      if (r.drafts.size() != static_cast<size_t>(depth + 1)) continue;
      const int64_t pos = pos0[j] + mtp[j].n;
      try {
        r.kv.reserve(pos + 1 - r.kv.length());  // the chained position lies past the main cache's length
      } catch (const Error&) {
        continue;  // a full cache just drafts less
      }
      SequenceStep c;
      c.kv = &r.kv;
      c.tokens = &r.drafts.back();
      c.n = 1;
      chain.push_back(c);
      cpos.push_back(pos);
      crow.push_back(rows_of[j] + mtp[j].n - 1);
      next.push_back(&r);
    }
    if (chain.empty()) break;
    const Tensor prev = mtp_hidden;
    logits = model.mtp_forward(chain, cpos, crow, prev, &mtp_hidden, &rows_of);
    mtp = chain;
    pos0 = cpos;
    drafting = next;
  }
}

void Engine::step(Running& running, std::vector<EvalJob*> evals, bool collective) {
  DeepseekNetwork& model = model_->network();
  StepPlan p;
  try {
    plan(running, p);
  } catch (...) {
    // Not one of the step's own errors (those fail their requests inside plan): the loop fails the running
    // requests; the evaluations are answered here, or their callers would wait for ever.
    for (EvalJob* j : evals) j->finish(std::current_exception());
    throw;
  }
  // Evaluation jobs join the batch after the requests; each is checked alone so a bad one fails alone.
  const ModelConfig& cfg = model_->config();
  std::vector<EvalJob*> eval_in_step;
  for (EvalJob* j : evals) {
    try {
      check_step(j->step, cfg);
      j->step.kv->reserve(j->step.n);
      eval_in_step.push_back(j);
    } catch (...) {
      j->finish(std::current_exception());
    }
  }
  const size_t n_requests = p.steps.size();
  std::vector<SequenceStep> steps = p.steps;
  for (EvalJob* j : eval_in_step) steps.push_back(j->step);
  if (steps.empty()) {
    // Nothing could run: the newest blocked request gives way (fails alone) so the others can progress.
    if (!p.blocked.empty()) finish(*p.blocked.back().first, FinishReason::kError, p.blocked.back().second);
    if (!collective) return;  // with EP the rank still takes part in the step, with no sequence
  }
  bool mtp_work = false;
  for (RequestState* r : p.reqs) mtp_work |= r->speculative;
  // The step as one batch: built (and uploaded) once, one forward, one sampling op over every row that
  // samples; only the sampled ids come back to the host (a verify step's rows too, for the acceptance).
  const int64_t V = cfg.vocab_size;
  std::vector<std::vector<int32_t>> emitted(n_requests);           // the tokens each request emits this step
  std::vector<std::vector<TokenLogprobs>> emitted_lp(n_requests);  // theirs, for requests that ask
  try {
    std::lock_guard<std::mutex> lock(model_->step_mutex());
    auto run = [&] {
      std::vector<SampleRow> rows;
      std::vector<int64_t> sample_at(p.n_plain, -1);
      for (size_t i = 0; i < p.n_plain; ++i) {
        if (steps[i].no_logits) continue;
        RequestState& r = *p.reqs[i];
        sample_at[i] = static_cast<int64_t>(rows.size());
        rows.push_back({r.params.sampling, &r.rng, &r.history});
      }
      // A device samples from the table packed with the batch, which has no logit bias (and packing draws
      // each sampled row's random number): a step with a biased row samples on the host, packing nothing.
      bool biased = false;
      for (const SampleRow& s : rows) biased |= !s.params.logit_bias.empty();
      StepBatch batch = model.make_batch(steps, biased ? nullptr : &rows);
      p.row.resize(n_requests);
      for (size_t i = 0; i < n_requests; ++i) p.row[i] = batch.row_of(i);
      Tensor hidden;
      std::function<void(int64_t, const Tensor&)> keep_hidden;
      if (mtp_work)
        keep_hidden = [&](int64_t layer, const Tensor& h) {
          if (layer == cfg.num_hidden_layers) hidden = h;
        };
      const Tensor logits = model.forward(batch, keep_hidden);
      std::vector<int32_t> sampled(rows.size());
      if (!rows.empty())
        model.backend().sample(logits.slice_rows(0, static_cast<int64_t>(rows.size())), rows,
                               batch.sample_table(), sampled.data());  // none when biased
      std::vector<float> row;
      for (size_t i = 0; i < p.n_plain; ++i) {
        if (sample_at[i] < 0) continue;
        emitted[i].push_back(sampled[sample_at[i]]);
        const int32_t top = p.reqs[i]->params.logprobs;
        if (top < 0 || sampled[sample_at[i]] < 0) continue;
        row.resize(static_cast<size_t>(V));
        model.backend().copy_to_host(logits.slice_rows(sample_at[i], 1), row.data());
        emitted_lp[i].push_back(token_logprobs(row.data(), V, sampled[sample_at[i]], top));
      }
      // Verify steps: their rows follow, 1 + drafts each; accepted on the host.
      int64_t at = static_cast<int64_t>(rows.size());
      std::vector<float> host;
      for (size_t i = p.n_plain; i < n_requests; ++i) {
        RequestState& r = *p.reqs[i];
        const int64_t n = steps[i].n;
        host.resize(static_cast<size_t>(n * V));
        model.backend().copy_to_host(logits.slice_rows(at, n), host.data());
        at += n;
        if (first_non_finite(host.data(), n * V) >= 0) {
          emitted[i].push_back(-1);
          continue;
        }
        emitted[i] = accept_drafts(host.data(), V, r.drafts, r.params.sampling, r.rng, &r.history);
        if (r.params.logprobs >= 0)  // emitted token j was drawn from row j
          for (size_t j = 0; j < emitted[i].size() && emitted[i][j] >= 0; ++j)
            emitted_lp[i].push_back(token_logprobs(host.data() + j * V, V, emitted[i][j], r.params.logprobs));
        // The cache keeps the fed tokens the model accepted (the last one emitted is fed next step).
        r.kv.truncate(p.past[i] + static_cast<int64_t>(emitted[i].size()));
        r.stream->count_drafts(static_cast<int64_t>(r.drafts.size()),
                               static_cast<int64_t>(emitted[i].size()) - 1);
      }
      for (size_t k = 0; k < eval_in_step.size(); ++k) {
        const SequenceStep& st = steps[n_requests + k];
        const int64_t n = st.all_logits ? st.n : 1;
        model.backend().copy_to_host(logits.slice_rows(at, n), eval_in_step[k]->logits);
        at += n;
      }
      if (mtp_work) draft(p, hidden, emitted);
    };
    if (collective) {
      ep::ExpertParallel& ep = *model_->ep();
      ep::run_collective(ep.transport(), run);
    } else {
      run();
    }
  } catch (const std::exception& e) {
    for (RequestState* r : p.reqs) finish(*r, FinishReason::kError, e.what());
    for (EvalJob* j : eval_in_step) j->finish(std::current_exception());
    if (collective) throw;  // the group failed (run_collective aborted it)
    return;
  }
  for (EvalJob* j : eval_in_step) j->finish();
  for (size_t i = 0; i < n_requests; ++i) {
    RequestState& r = *p.reqs[i];
    const int64_t plen = static_cast<int64_t>(r.prompt.size());
    if (r.prefilled >= plen) r.stream->count_decode_forward();
    if (r.prefilled < plen) {
      r.prefilled += steps[i].n;
      if (r.prefilled < plen) continue;  // more prompt chunks to go
      publish(r);                        // the prompt's pages, for requests that share its prefix
    }
    if (r.stream->cancelled()) {
      finish(r, FinishReason::kCancelled);
      continue;
    }
    for (size_t j = 0; j < emitted[i].size(); ++j) {
      const int32_t t = emitted[i][j];
      if (t < 0) {
        finish(r, FinishReason::kError,
               "the model produced a non-finite logit (NaN or infinity) for this request: the weights or the "
               "activations overflowed; nothing was sampled");
        break;
      }
      r.last_token = t;
      emit(r, t, j < emitted_lp[i].size() ? &emitted_lp[i][j] : nullptr);
      if (r.finished) break;
    }
  }
}

}  // namespace moert
