// The communication stream of the two-microbatch overlap on hosts: one thread that runs transport calls
// in the order they were submitted, while the submitting thread computes. Submission order is program
// order, the same on every rank, so the collectives still match across ranks.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace moert::ep {

class ExchangeLane {
 public:
  ExchangeLane();
  // Runs what is still queued, then joins.
  ~ExchangeLane();
  ExchangeLane(const ExchangeLane&) = delete;
  ExchangeLane& operator=(const ExchangeLane&) = delete;

  // fn runs on the lane after everything submitted before it; the future carries its exception. Once a
  // task has failed, later ones fail with the same error without running.
  std::future<void> submit(std::function<void()> fn);

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> queue_;
  bool stop_ = false;
  std::exception_ptr failed_;  // the first task's error (lane thread only)
  std::thread thread_;
};

}  // namespace moert::ep
