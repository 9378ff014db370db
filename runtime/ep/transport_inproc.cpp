#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <type_traits>

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
    rows_.resize(size);
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

  // Fails the group from inside a round's collect (the lock is held there).
  [[noreturn]] void fail_in_round(const std::string& why) { fail_locked(why); }

  struct Nothing {
    void operator()() const {}
  };
  // `last` runs once every rank has collected (under the lock, by the last to leave); `unlocked` after
  // collect without the lock (the deposits stay as they are until every rank has left), so ranks copy at
  // once.
  template <class Deposit, class Collect, class Last = Nothing, class Unlocked = Nothing>
  void round(int rank, const char* op, Deposit&& deposit, Collect&& collect, Last&& last = Last{},
             Unlocked&& unlocked = Unlocked{}) {
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
    if constexpr (!std::is_same_v<std::decay_t<Unlocked>, Nothing>) {
      lk.unlock();
      unlocked();
      lk.lock();
    }
    if (++left_ == size_) {
      last();
      arrived_ = left_ = 0;
      collecting_ = false;
      ++gen_;
      cv_.notify_all();
    }
  }

  std::vector<std::vector<Bytes>> mail_;  // [src][dst]
  // all_to_all_rows: each rank's send tensor (its owner keeps the memory alive until that rank's next
  // round) and its row counts per destination.
  struct RowsPost {
    Tensor send;
    std::vector<int64_t> rows;
    size_t row_bytes = 0;
  };
  std::vector<RowsPost> rows_;
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

  bool moves_rows(DeviceKind device) const override {
    return device == DeviceKind::kCpu && !g_->options().rows_in_messages;
  }

  // One round: every rank posts its send tensor, then copies its rows out of every sender's tensor.
  void all_to_all_rows(Backend& b, const Tensor& send, const std::vector<int64_t>& send_rows, Tensor& recv,
                       const std::vector<int64_t>& recv_rows, const std::shared_ptr<void>& after) override {
    if (g_->options().rows_in_messages)
      Transport::all_to_all_rows(b, send, send_rows, recv, recv_rows, after);
    const int R = size();
    const size_t rb = check_rows(R, DeviceKind::kCpu, send, send_rows, recv, recv_rows);
    size_t bytes_to_others = 0;
    for (int r = 0; r < R; ++r)
      if (r != rank_) bytes_to_others += static_cast<size_t>(send_rows[r]) * rb;
    emulate_slow_link(g_->options().delay, g_->options().bytes_per_second, bytes_to_others);
    g_->round(
        rank_, "all_to_all_rows",
        [&] {
          g_->rows_[rank_] = {send, send_rows, rb};
        },
        [&] {  // the counts, under the lock (a mismatch fails the group)
          for (int s = 0; s < R; ++s) {
            const InProcessGroup::RowsPost& p = g_->rows_[s];
            const int64_t n = p.rows[rank_];
            if (n != recv_rows[s] || (n && p.row_bytes != rb))
              g_->fail_in_round("all_to_all_rows: rank " + std::to_string(rank_) + " expects " +
                                std::to_string(recv_rows[s]) + " rows of " + std::to_string(rb) +
                                " bytes from rank " + std::to_string(s) + ", which sends " +
                                std::to_string(n) + " of " + std::to_string(p.row_bytes));
          }
        },
        [&] {  // every receiver has copied: the senders' tensors are no longer held
          for (InProcessGroup::RowsPost& p : g_->rows_) p.send = Tensor{};
        },
        [&] {  // the copies, every rank at once
          int64_t at = 0;
          for (int s = 0; s < R; ++s) {
            const InProcessGroup::RowsPost& p = g_->rows_[s];
            const int64_t n = p.rows[rank_];
            int64_t off = 0;
            for (int d = 0; d < rank_; ++d) off += p.rows[d];
            if (n)
              std::memcpy(static_cast<uint8_t*>(recv.data) + static_cast<size_t>(at) * rb,
                          static_cast<const uint8_t*>(p.send.data) + static_cast<size_t>(off) * rb,
                          static_cast<size_t>(n) * rb);
            at += n;
          }
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
