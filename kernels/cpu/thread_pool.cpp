// parallel_for publishes a job as one atomic word: generation (32 bits) | parts (16) | parts claimed (16).
// Everyone taking part (the caller and the workers) claims parts with a compare-and-swap on that word, so
// a part goes to whoever is running: when a worker is slow to wake (or descheduled on a busy machine) the
// caller runs its part too instead of waiting. A worker reads the job only after claiming a part, and the
// caller returns only when every claimed part is done, so the job stays valid while it is read.
// Waiting (workers for a job, the caller for the last parts): spin with pause for a moment, then yield,
// and after kSleepNs sleep on a condition variable. Sleeper counts are sequentially consistent atomics
// checked after publishing, so wake-ups are never lost.
#include "thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MOERT_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define MOERT_PAUSE() asm volatile("yield")
#else
#define MOERT_PAUSE() \
  do {                \
  } while (0)
#endif

namespace moert::kernels {
namespace {

constexpr int64_t kPauseNs = 50'000;     // pure spinning
constexpr int64_t kSleepNs = 2'000'000;  // then yielding until this, then sleeping

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr uint64_t gen_of(uint64_t s) {
  return s >> 32;
}
constexpr int parts_of(uint64_t s) {
  return static_cast<int>((s >> 16) & 0xffff);
}
constexpr int claimed_of(uint64_t s) {
  return static_cast<int>(s & 0xffff);
}

// Spins (pause, then yield) until done() or the time is up; true when done.
template <class F>
bool spin_until(F&& done) {
  if (done()) return true;
  const int64_t t0 = now_ns();
  for (int i = 1;; ++i) {
    if ((i & 31) == 0) {
      const int64_t dt = now_ns() - t0;
      if (dt > kSleepNs) return done();
      if (dt > kPauseNs) sched_yield();
    }
    MOERT_PAUSE();
    if (done()) return true;
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, 0xffff);
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    state_.store((gen_of(state_.load()) + 1) << 32);
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims and runs parts of the generation in `s` until none is left; returns the last state seen.
void ThreadPool::run_parts(uint64_t s, int index) {
  const uint64_t gen = gen_of(s);
  while (gen_of(s) == gen && claimed_of(s) < parts_of(s)) {
    if (!state_.compare_exchange_weak(s, s + 1)) continue;  // s reloaded
    const int64_t p = claimed_of(s);
    const int64_t b = p * job_chunk_, e = std::min(job_n_, b + job_chunk_);
    if (b < e) (*job_)(b, e, index);
    const int finished = done_.fetch_add(1) + 1;
    if (finished == parts_of(s) && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
    s = state_.load();
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;  // the generation at construction (not the current one: this thread may start late)
  for (;;) {
    // stop_ is part of the predicate: the destructor may bump the generation after this thread read it,
    // and waiting for a generation change alone would then never end.
    auto fresh = [&] { return stop_.load() || gen_of(state_.load(std::memory_order_acquire)) != seen; };
    if (!spin_until(fresh)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      cv_start_.wait(lock, fresh);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    const uint64_t s = state_.load();
    seen = gen_of(s);
    run_parts(s, index);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int parts = static_cast<int>(std::min<int64_t>(size(), (n + grain - 1) / grain));
  if (parts <= 1) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = (n + parts - 1) / parts;
  done_.store(0);
  const uint64_t s = ((gen_of(state_.load()) + 1) << 32) | (static_cast<uint64_t>(parts) << 16);
  state_.store(s);  // publishes the job (seq_cst)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_start_.notify_all();
  }
  run_parts(s, 0);
  auto finished = [&] { return done_.load(std::memory_order_acquire) == parts; };
  if (!spin_until(finished)) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_sleeping_.store(true);
    cv_done_.wait(lock, finished);
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
}

}  // namespace moert::kernels
