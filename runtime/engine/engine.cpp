#include "engine/engine.h"

#include <algorithm>

#include "ep/placement.h"

#include "util/error.h"

namespace moert {

using Clock = std::chrono::steady_clock;

Request::Next Request::next(StreamEvent* ev, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (events_.empty() && done_delivered_) return Next::kDone;
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return Next::kTimeout;
  *ev = std::move(events_.front());
  events_.pop_front();
  if (ev->finish != FinishReason::kNone) done_delivered_ = true;
  return Next::kEvent;
}

Usage Request::usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  Usage u;
  u.prompt_tokens = static_cast<int64_t>(prompt_.size());
  u.generated_tokens = generated_;
  u.cached_prompt_tokens = cached_;
  u.decode_forwards = decode_forwards_;
  u.draft_tokens = drafted_;
  u.accepted_drafts = accepted_;
  if (generated_ > 0) {
    u.time_to_first_token_s = std::chrono::duration<double>(t_first_ - t_submit_).count();
    const auto end = finish_ == FinishReason::kNone ? Clock::now() : t_end_;
    const double decode_s = std::chrono::duration<double>(end - t_first_).count();
    u.tokens_per_second = generated_ > 1 && decode_s > 0 ? (generated_ - 1) / decode_s : 0.0;
  }
  return u;
}

std::string Request::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_ == FinishReason::kError ? error_ : std::string();
}

FinishReason Request::finish_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_;
}

struct Engine::EvalJob {
  SequenceStep step;
  float* logits = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  void finish(std::exception_ptr e = nullptr) {
    // Notified under the lock: the waiter owns the job (on its stack) and may destroy it as soon as it
    // sees `done`, so the notify must not outlive the critical section.
    std::lock_guard<std::mutex> lock(mu);
    error = e;
    done = true;
    cv.notify_all();
  }
};

Engine::Engine(std::shared_ptr<LoadedModel> model, TextDecoderFactory decoders)
    : model_(std::move(model)), decoders_(std::move(decoders)) {
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

std::shared_ptr<Request> Engine::submit(std::vector<int32_t> prompt, GenerationParams params) {
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
  auto r = std::make_shared<Request>();
  r->prompt_ = std::move(prompt);
  r->params_ = std::move(params);
  r->kv_ = KvSequence(&model_->cache());
  r->rng_ = SamplingRng(r->params_.sampling.seed);
  r->history_.add_prompt(r->prompt_);
  if (decoders_) r->decoder_ = decoders_();
  r->stops_ = std::make_unique<StopMatcher>(r->params_.stop_strings);
  r->t_submit_ = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(r);
  }
  cv_.notify_all();
  return r;
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
  if (job.error) std::rethrow_exception(job.error);
}

void Engine::admit_queued(std::vector<std::shared_ptr<Request>>& running) {
  while (!queue_.empty() && static_cast<int64_t>(running.size()) < model_->options().max_batch) {
    std::shared_ptr<Request> r = std::move(queue_.front());
    queue_.pop_front();
    if (r->cancelled_)
      finish(*r, FinishReason::kCancelled);
    else if (r->params_.max_tokens == 0)
      finish(*r, FinishReason::kLength);
    else
      running.push_back(std::move(r));
  }
}

void Engine::finish(Request& r, FinishReason why, const std::string& error) {
  StreamEvent ev;
  ev.finish = why;
  deliver(r, std::move(ev), error);
}

void Engine::attach_prefix(Request& r) {
  r.prefix_looked_up_ = true;
  LatentCache& cache = model_->cache();
  if (!cache.prefix_cache() || r.kv_.length() != 0) return;
  int64_t got = 0;
  {
    // A page matched in part is copied with backend ops: not while a forward runs.
    std::lock_guard<std::mutex> lock(model_->step_mutex());
    got = cache.attach_prefix(r.kv_, r.prompt_.data(), static_cast<int64_t>(r.prompt_.size()) - 1);
  }
  r.prefilled_ = got;
  std::lock_guard<std::mutex> lock(r.mu_);
  r.cached_ = got;
}

void Engine::publish(Request& r) {
  LatentCache& cache = model_->cache();
  const int64_t len = r.kv_.length();
  if (!cache.prefix_cache() || len < r.kv_.page_rows()) return;
  std::vector<int32_t> tokens(r.prompt_.begin(),
                              r.prompt_.begin() + std::min<int64_t>(len, r.prompt_.size()));
  for (size_t i = 0; static_cast<int64_t>(tokens.size()) < len && i < r.output_.size(); ++i)
    tokens.push_back(r.output_[i]);
  if (static_cast<int64_t>(tokens.size()) == len) cache.publish(r.kv_, tokens.data());
}

void Engine::deliver(Request& r, StreamEvent ev, const std::string& error) {
  const bool final = ev.finish != FinishReason::kNone;
  if (final && ev.finish != FinishReason::kError && r.kv_.cache()) publish(r);
  if (final) r.kv_ = KvSequence();  // return the pages to the shared budget now
  {
    std::lock_guard<std::mutex> lock(r.mu_);
    if (ev.token >= 0) {
      if (r.generated_ == 0) r.t_first_ = Clock::now();
      ++r.generated_;
    }
    if (final) {
      r.finish_ = ev.finish;
      r.error_ = error;
      r.t_end_ = Clock::now();
    }
    r.events_.push_back(std::move(ev));
  }
  r.cv_.notify_all();
}

void Engine::emit(Request& r, int32_t token) {
  const ModelConfig& cfg = model_->config();
  const GenerationParams& p = r.params_;
  r.history_.add_output(token);
  r.output_.push_back(token);
  StreamEvent ev;
  ev.token = token;
  const bool eos = !p.ignore_eos && token == cfg.eos_token_id;
  const bool stop_id =
      std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  bool stopped = false;
  if (eos || stop_id) {
    // The stop token itself is not text; whatever was held back is released.
    if (r.decoder_) ev.text = r.stops_->push(r.decoder_->flush(), &stopped);
    if (!stopped) ev.text += r.stops_->flush();
    ev.finish = eos ? FinishReason::kEos : FinishReason::kStop;
  } else {
    if (r.decoder_) ev.text = r.stops_->push(r.decoder_->push(token), &stopped);
    if (stopped) {
      ev.finish = FinishReason::kStop;
    } else if (r.generated_ + 1 >= p.max_tokens) {
      if (r.decoder_) ev.text += r.stops_->push(r.decoder_->flush(), &stopped);
      if (!stopped) ev.text += r.stops_->flush();
      ev.finish = stopped ? FinishReason::kStop : FinishReason::kLength;
    }
  }
  deliver(r, std::move(ev), "");
}

void Engine::loop() {
  if (ep::ExpertParallel* ep = model_->ep()) return loop_ep(*ep);
  std::vector<std::shared_ptr<Request>> running;
  std::vector<EvalJob*> evals;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !running.empty() || !evals_.empty(); });
      if (stop_) {
        for (auto& r : running) finish(*r, FinishReason::kCancelled);
        for (auto& r : queue_) finish(*r, FinishReason::kCancelled);
        queue_.clear();
        for (EvalJob* j : evals_)
          j->finish(std::make_exception_ptr(Error(ErrorCode::kCancelled, "the engine is stopping")));
        evals_.clear();
        return;
      }
      evals.assign(evals_.begin(), evals_.end());
      evals_.clear();
      admit_queued(running);
    }
    if (!running.empty() || !evals.empty()) step(running, std::move(evals));
    evals.clear();
    running.erase(std::remove_if(running.begin(), running.end(),
                                 [](const std::shared_ptr<Request>& r) {
                                   return r->finish_reason() != FinishReason::kNone;
                                 }),
                  running.end());
  }
}

// With expert parallelism every forward is collective: every rank must take part in every MoE exchange.
// So before each step the ranks all-reduce two counters, {ranks with work, ranks stopping}: when any rank
// has work, every rank steps (a rank with nothing to run steps with no sequence); when none has, they
// idle (a short wait for local work, then ask again); the engines end together once every rank is
// stopping (a stopping rank cancels its own requests and keeps stepping while the others have work). Every
// eplb_interval steps the ranks re-place the experts from the gathered load (EPLB). A failed collective
// (a rank that failed or stopped answering) fails the group: running and later requests end with its error.
void Engine::loop_ep(ep::ExpertParallel& ep) {
  std::vector<std::shared_ptr<Request>> running;
  std::string group_error;
  const int64_t eplb_interval = model_->options().eplb_interval;
  int64_t steps = 0;
  auto fail_all = [&](std::unique_lock<std::mutex>* held) {
    for (auto& r : running)
      if (r->finish_reason() == FinishReason::kNone) finish(*r, FinishReason::kError, group_error);
    running.clear();
    std::unique_lock<std::mutex> lock;
    if (!held) lock = std::unique_lock<std::mutex>(mu_);
    for (auto& r : queue_) finish(*r, FinishReason::kError, group_error);
    queue_.clear();
  };
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!group_error.empty()) {
        // The group failed: no more collectives; requests fail at once.
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        fail_all(&lock);
        if (stop_) return;
        continue;
      }
      stopping = stop_;
      if (stopping) {
        for (auto& r : running) finish(*r, FinishReason::kCancelled);
        running.clear();
        for (auto& r : queue_) finish(*r, FinishReason::kCancelled);
        queue_.clear();
      }
      admit_queued(running);
    }
    int64_t flags[2] = {running.empty() ? 0 : 1, stopping ? 1 : 0};
    try {
      ep::run_collective(ep.transport(), [&] { ep.transport().all_reduce_sum(flags, 2); });
    } catch (const std::exception& e) {
      group_error = e.what();
      fail_all(nullptr);
      continue;
    }
    if (flags[1] == ep.size()) return;  // every rank is stopping
    if (flags[0] == 0) {
      // Nobody has work: wait a little for local work, then ask the group again.
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping)
        cv_.wait_for(lock, std::chrono::milliseconds(1), [] { return false; });
      else
        cv_.wait_for(lock, std::chrono::milliseconds(1), [&] { return stop_ || !queue_.empty(); });
      continue;
    }
    try {
      step(running, {}, /*collective=*/true);
      if (eplb_interval > 0 && ++steps % eplb_interval == 0) {
        std::lock_guard<std::mutex> lock(model_->step_mutex());
        ep::run_collective(ep.transport(), [&] {
          ep::EplbOptions eo;
          ep::rebalance(ep, model_->model(), eo);
        });
      }
    } catch (const std::exception& e) {
      group_error = e.what();
      fail_all(nullptr);
      continue;
    }
    running.erase(std::remove_if(running.begin(), running.end(),
                                 [](const std::shared_ptr<Request>& r) {
                                   return r->finish_reason() != FinishReason::kNone;
                                 }),
                  running.end());
  }
}

void Engine::step(std::vector<std::shared_ptr<Request>>& running, std::vector<EvalJob*> evals,
                  bool collective) {
  DeepseekModel& model = model_->model();
  std::vector<SequenceStep> steps;
  std::vector<Request*> in_step;
  std::vector<std::pair<Request*, std::string>> blocked;  // waiting for KV pages, with the reason
  int64_t budget = prefill_chunk_;
  for (auto& rp : running) {
    Request& r = *rp;
    if (r.cancelled_) {
      finish(r, FinishReason::kCancelled);
      continue;
    }
    if (!r.prefix_looked_up_) attach_prefix(r);
    SequenceStep st;
    st.kv = &r.kv_;
    const int64_t plen = static_cast<int64_t>(r.prompt_.size());
    if (r.prefilled_ < plen) {
      // Chunked prefill: at most `budget` prompt tokens per step across requests, so decodes keep flowing.
      st.n = std::min(plen - r.prefilled_, budget);
      if (st.n <= 0) continue;
      st.tokens = r.prompt_.data() + r.prefilled_;
      st.no_logits = r.prefilled_ + st.n < plen;  // a chunk before the prompt's last samples nothing
    } else {
      st.n = 1;
      st.tokens = &r.last_token_;
    }
    if (r.kv_.length() + st.n > model_->config().max_position_embeddings) {
      finish(r, FinishReason::kLength);
      continue;
    }
    try {
      r.kv_.reserve(st.n);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kOutOfMemory) throw;
      blocked.emplace_back(&r, e.what());
      continue;
    }
    if (r.prefilled_ < plen) budget -= st.n;
    steps.push_back(st);
    in_step.push_back(&r);
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
  const size_t n_requests = steps.size();
  for (EvalJob* j : eval_in_step) steps.push_back(j->step);
  if (steps.empty()) {
    // Nothing could run: the newest blocked request gives way (fails alone) so the others can progress.
    if (!blocked.empty()) finish(*blocked.back().first, FinishReason::kError, blocked.back().second);
    if (!collective) return;  // with EP the rank still takes part in the step, with no sequence
  }
  // The step as one batch: built (and uploaded) once, one forward, one sampling op over every row that
  // samples; only the sampled ids come back to the host.
  std::vector<int32_t> sampled;
  std::vector<int64_t> sample_at(in_step.size(), -1);  // each step's row in `sampled`
  try {
    std::lock_guard<std::mutex> lock(model_->step_mutex());
    auto run = [&] {
      std::vector<SampleRow> rows;
      for (size_t i = 0; i < in_step.size(); ++i) {
        if (steps[i].no_logits) continue;
        Request& r = *in_step[i];
        sample_at[i] = static_cast<int64_t>(rows.size());
        rows.push_back({r.params_.sampling, &r.rng_, &r.history_});
      }
      StepBatch batch = model.make_batch(steps, &rows);
      const Tensor logits = model.forward(batch);
      sampled.resize(rows.size());
      if (!rows.empty())
        model.backend().sample(logits.slice_rows(0, static_cast<int64_t>(rows.size())), rows,
                               batch.sample_table(), sampled.data());
      // The evaluation jobs' rows follow the requests' in the logits.
      int64_t at = static_cast<int64_t>(rows.size());
      for (size_t k = 0; k < eval_in_step.size(); ++k) {
        const SequenceStep& st = steps[n_requests + k];
        const int64_t n = st.all_logits ? st.n : 1;
        model.backend().copy_to_host(logits.slice_rows(at, n), eval_in_step[k]->logits);
        at += n;
      }
    };
    if (collective) {
      ep::ExpertParallel& ep = *model_->ep();
      ep::run_collective(ep.transport(), run);
    } else {
      run();
    }
  } catch (const std::exception& e) {
    for (Request* r : in_step) finish(*r, FinishReason::kError, e.what());
    for (EvalJob* j : eval_in_step) j->finish(std::current_exception());
    if (collective) throw;  // the group failed (run_collective aborted it)
    return;
  }
  for (EvalJob* j : eval_in_step) j->finish();
  for (size_t i = 0; i < in_step.size(); ++i) {
    Request& r = *in_step[i];
    const int64_t plen = static_cast<int64_t>(r.prompt_.size());
    if (r.prefilled_ >= plen) {
      std::lock_guard<std::mutex> lock(r.mu_);
      ++r.decode_forwards_;
    }
    if (r.prefilled_ < plen) {
      r.prefilled_ += steps[i].n;
      if (r.prefilled_ < plen) continue;  // more prompt chunks to go
      publish(r);                         // the prompt's pages, for requests that share its prefix
    }
    if (r.cancelled_) {
      finish(r, FinishReason::kCancelled);
      continue;
    }
    const int32_t t = sampled[sample_at[i]];
    if (t < 0) {
      finish(r, FinishReason::kError,
             "the model produced a non-finite logit (NaN or infinity) for this request: the weights or the "
             "activations overflowed; nothing was sampled");
      continue;
    }
    r.last_token_ = t;
    emit(r, t);
  }
}

}  // namespace moert
