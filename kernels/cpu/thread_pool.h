// A fixed pool of worker threads for the CPU kernels. parallel_for splits [0, n) into contiguous chunks,
// one per thread, and runs them with the calling thread taking part; it does not allocate per call.
// Idle workers spin for about 2 ms after each call (cheap back-to-back calls), then sleep. A part not yet
// picked up by a worker is run by the caller, so a slow-to-wake worker does not stall the call.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moert::kernels {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end, thread_index) over chunks of [0, n); each chunk at least `grain` long except the last.
  // Not reentrant: one parallel_for at a time per pool (callers serialise through the model's step).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker(int index);
  void run_parts(uint64_t state, int index);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  // The job of the current generation (written by the caller before it publishes state_).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  std::atomic<uint64_t> state_{0};  // generation << 32 | parts << 16 | parts claimed
  std::atomic<int> done_{0};        // parts finished in the current generation
  std::atomic<int> sleepers_{0};    // workers asleep on cv_start_
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

// Runs fn over [0, n) on `pool` when given, else inline on the calling thread.
inline void parallel_for(ThreadPool* pool, int64_t n, int64_t grain,
                         const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (!pool || pool->size() == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  pool->parallel_for(n, grain, fn);
}

}  // namespace moert::kernels
