// A fixed pool of worker threads for the CPU kernels. parallel_for splits [0, n) into contiguous chunks,
// one per thread, and runs them with the calling thread taking part; it does not allocate per call.
#pragma once
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
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  int job_parts_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
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
