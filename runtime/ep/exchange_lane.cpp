#include "ep/exchange_lane.h"

namespace moert::ep {

ExchangeLane::ExchangeLane() : thread_([this] { loop(); }) {}

ExchangeLane::~ExchangeLane() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::future<void> ExchangeLane::submit(std::function<void()> fn) {
  // After a failure nothing more reaches the transport: a later exchange would pair with the peers'
  // earlier one (the failed one never happened here). Every later task fails with the first error.
  std::packaged_task<void()> task([this, fn = std::move(fn)] {
    if (failed_) std::rethrow_exception(failed_);
    try {
      fn();
    } catch (...) {
      failed_ = std::current_exception();
      throw;
    }
  });
  std::future<void> f = task.get_future();
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return f;
}

void ExchangeLane::loop() {
  for (;;) {
    std::packaged_task<void()> task;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // an exception goes into the task's future
  }
}

}  // namespace moert::ep
