#include <condition_variable>
#include <mutex>
#include <thread>

#include "ep/transport.h"
#include "util/error.h"

namespace moert::ep {

void run_collective(Transport& t, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    t.abort("rank " + std::to_string(t.rank()) + " failed: " + e.what());
    throw;
  }
}

// One round at a time: every rank deposits (phase 1), the last arrival opens collection, every rank
// collects (phase 2), the last to leave resets for the next round. One mutex, one condition variable.
class InProcessGroup {
 public:
  InProcessGroup(int size, InProcessOptions o) : size_(size), opts_(o) {
    mail_.assign(size, std::vector<Bytes>(size));
    contrib_i_.resize(size);
    contrib_d_.resize(size);
  }

  int size() const { return size_; }
  const InProcessOptions& options() const { return opts_; }

  void abort(const std::string& why) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!aborted_) {
      aborted_ = true;
      why_ = why;
    }
    cv_.notify_all();
  }

  template <class Deposit, class Collect>
  void round(int rank, const char* op, Deposit&& deposit, Collect&& collect) {
    std::unique_lock<std::mutex> lk(mu_);
    const auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
    wait(lk, deadline, rank, op, [&] { return aborted_ || !collecting_; });
    if (arrived_ == 0) {
      op_ = op;
    } else if (op_ != op) {
      fail_locked("rank " + std::to_string(rank) + " called " + op + " while the others called " + op_);
    }
    deposit();
    const uint64_t my = gen_;
    if (++arrived_ == size_) {
      collecting_ = true;
      cv_.notify_all();
    } else {
      wait(lk, deadline, rank, op, [&] { return aborted_ || (collecting_ && gen_ == my); });
    }
    collect();
    if (++left_ == size_) {
      arrived_ = left_ = 0;
      collecting_ = false;
      ++gen_;
      cv_.notify_all();
    }
  }

  std::vector<std::vector<Bytes>> mail_;  // [src][dst]
  std::vector<std::vector<int64_t>> contrib_i_;
  std::vector<std::vector<double>> contrib_d_;

 private:
  template <class Pred>
  void wait(std::unique_lock<std::mutex>& lk, std::chrono::steady_clock::time_point deadline, int rank,
            const char* op, Pred pred) {
    if (!cv_.wait_until(lk, deadline, pred)) {
      const std::string why = "expert-parallel " + std::string(op) + ": rank " + std::to_string(rank) +
                              " timed out after " + std::to_string(opts_.timeout.count()) +
                              " ms waiting for the other ranks";
      aborted_ = true;
      why_ = why;
      cv_.notify_all();
      throw Error(ErrorCode::kTimeout, why);
    }
    if (aborted_) throw Error(ErrorCode::kCancelled, "expert-parallel group aborted: " + why_);
  }
  [[noreturn]] void fail_locked(const std::string& why) {
    aborted_ = true;
    why_ = why;
    cv_.notify_all();
    throw Error(ErrorCode::kInternal, "expert-parallel group: " + why);
  }

  const int size_;
  const InProcessOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool collecting_ = false, aborted_ = false;
  int arrived_ = 0, left_ = 0;
  uint64_t gen_ = 0;
  std::string op_, why_;
};

namespace {

class InProcessTransport final : public Transport {
 public:
  InProcessTransport(std::shared_ptr<InProcessGroup> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size(); }
  std::chrono::milliseconds timeout() const override { return g_->options().timeout; }
  bool single_host() const override { return true; }

  void all_to_all(const std::vector<Bytes>& send, std::vector<Bytes>& recv) override {
    if (static_cast<int>(send.size()) != size())
      fail(ErrorCode::kInternal, "all_to_all: " + std::to_string(send.size()) + " send buffers for " +
                                     std::to_string(size()) + " ranks");
    emulate_slow_link(g_->options().delay, g_->options().bytes_per_second, send, rank_);
    recv.assign(size(), Bytes());
    g_->round(
        rank_, "all_to_all", [&] { g_->mail_[rank_] = send; },
        [&] {
          for (int s = 0; s < size(); ++s) recv[s] = std::move(g_->mail_[s][rank_]);
        });
  }

  void all_reduce_sum(int64_t* data, size_t n) override {
    reduce(data, n, g_->contrib_i_, "all_reduce(int64)");
  }
  void all_reduce_sum(double* data, size_t n) override {
    reduce(data, n, g_->contrib_d_, "all_reduce(double)");
  }

  void barrier() override {
    g_->round(
        rank_, "barrier", [] {}, [] {});
  }

  void abort(const std::string& why) override { g_->abort(why); }

 private:
  template <class T>
  void reduce(T* data, size_t n, std::vector<std::vector<T>>& contrib, const char* op) {
    bool mismatch = false;
    g_->round(
        rank_, op, [&] { contrib[rank_].assign(data, data + n); },
        [&] {
          for (int s = 0; s < size(); ++s) mismatch |= contrib[s].size() != n;
          if (mismatch) return;
          sum_in_rank_order(
              size(), [&](int s) { return contrib[s].data(); }, data, n);
        });
    if (mismatch) {
      abort(std::string(op) + ": ranks passed different lengths");
      fail(ErrorCode::kInternal, std::string(op) + ": ranks passed different lengths");
    }
  }

  std::shared_ptr<InProcessGroup> g_;
  int rank_;
};

}  // namespace

std::vector<std::shared_ptr<Transport>> make_in_process_group(int size, InProcessOptions opts) {
  if (size < 1) fail(ErrorCode::kInvalidArgument, "an expert-parallel group needs at least one rank");
  auto g = std::make_shared<InProcessGroup>(size, opts);
  std::vector<std::shared_ptr<Transport>> t;
  for (int r = 0; r < size; ++r) t.push_back(std::make_shared<InProcessTransport>(g, r));
  return t;
}

}  // namespace moert::ep
