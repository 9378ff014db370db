#include "ep/transport_mpi.h"

#include "util/error.h"

#ifdef MOERT_HAVE_MPI
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#endif

namespace moert::ep {

#ifndef MOERT_HAVE_MPI

namespace {
[[noreturn]] void no_mpi() {
  fail(ErrorCode::kUnsupported,
       "this build of moert has no MPI transport (MPI was not found when it was built)");
}
}  // namespace

bool mpi_built() {
  return false;
}
bool mpi_ensure_initialized() {
  no_mpi();
}
bool mpi_active() {
  return false;
}
int mpi_world_rank() {
  no_mpi();
}
int mpi_world_size() {
  no_mpi();
}
std::shared_ptr<Transport> make_mpi_transport(MpiOptions) {
  no_mpi();
}
void mpi_abort_job(int code) {
  std::_Exit(code);
}

#else  // MOERT_HAVE_MPI

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTagHeader = 7101, kTagData = 7102, kTagAbort = 7103;
constexpr size_t kAbortCap = 4096;

std::mutex g_init_mu;
bool g_we_initialised = false;

void finalize_at_exit() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail(ErrorCode::kInternal, std::string("MPI: ") + what + " failed: " + std::string(msg, len));
}

// Polls until every request completed, or the deadline passes (returns false). `also` runs between polls
// (it may throw). Backs off from yielding to short sleeps so oversubscribed ranks leave the cores to the
// ranks that compute.
template <class Also>
bool poll_all(std::vector<MPI_Request>& reqs, Clock::time_point deadline, Also&& also) {
  for (int spin = 0;; ++spin) {
    int done = 0;
    check_mpi(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall");
    if (done) return true;
    also();
    if (Clock::now() >= deadline) return false;
    if (spin < 64)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(spin < 1024 ? 20 : 200));
  }
}

struct Header {
  int64_t op, seq, bytes;
};

// One collective's buffers and requests; kept alive (graveyard) when the collective fails with requests
// still posted, so MPI never writes into freed memory.
struct Round {
  std::vector<Header> send_h, recv_h;
  std::vector<Bytes> send_copy;  // only for failed rounds (the caller's buffers go away)
  std::vector<Bytes>* recv = nullptr;
  std::vector<MPI_Request> reqs;
};

const char* op_name(int64_t op) {
  switch (op) {
    case 1:
      return "all_to_all";
    case 2:
      return "all_reduce(int64)";
    case 3:
      return "all_reduce(double)";
    case 4:
      return "barrier";
  }
  return "?";
}

class MpiTransport final : public Transport {
 public:
  MpiTransport(MPI_Comm comm, MpiOptions o) : comm_(comm), o_(o) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // One node holding every rank? (Collective, like the MPI_Comm_dup that made comm_.)
    MPI_Comm node = MPI_COMM_NULL;
    int node_size = 0;
    check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type");
    MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
    single_host_ = node_size == size_;
    abort_buf_.assign(kAbortCap, 0);
    check_mpi(MPI_Irecv(abort_buf_.data(), static_cast<int>(kAbortCap), MPI_CHAR, MPI_ANY_SOURCE, kTagAbort,
                        comm_, &abort_req_),
              "MPI_Irecv");
  }

  ~MpiTransport() override {
    if (!mpi_active()) return;  // finalised under us: nothing left to release
    std::lock_guard<std::mutex> lk(mu_);
    if (abort_req_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&abort_req_);
      MPI_Request_free(&abort_req_);
    }
    for (MPI_Request& r : abort_sends_)
      if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::chrono::milliseconds timeout() const override { return o_.timeout; }
  bool single_host() const override { return single_host_; }

  void all_to_all(const std::vector<Bytes>& send, std::vector<Bytes>& recv) override {
    if (static_cast<int>(send.size()) != size_)
      fail(ErrorCode::kInternal, "all_to_all: " + std::to_string(send.size()) + " send buffers for " +
                                     std::to_string(size_) + " ranks");
    emulate_slow_link(o_.delay, o_.bytes_per_second, send, rank_);
    exchange(1, send, recv);
  }

  void all_reduce_sum(int64_t* data, size_t n) override { reduce(2, data, n); }
  void all_reduce_sum(double* data, size_t n) override { reduce(3, data, n); }

  void barrier() override {
    std::vector<Bytes> send(size_), recv;
    exchange(4, send, recv);
  }

  void abort(const std::string& why) override {
    {
      std::lock_guard<std::mutex> lk(why_mu_);
      if (!local_abort_) {
        local_abort_ = true;
        local_why_ = why;
      }
    }
    // A collective in flight on another thread sees local_abort_ and notifies the peers itself.
    std::unique_lock<std::mutex> lk(mu_, std::try_to_lock);
    if (lk.owns_lock()) notify_peers_locked(why);
  }

 private:
  template <class T>
  void reduce(int64_t op, T* data, size_t n) {
    Bytes mine(n * sizeof(T));
    if (n) std::memcpy(mine.data(), data, mine.size());
    std::vector<Bytes> send(size_, mine), recv;
    exchange(op, send, recv);
    for (int s = 0; s < size_; ++s)
      if (recv[s].size() != mine.size()) {
        const std::string why = std::string(op_name(op)) + ": ranks passed different lengths (rank " +
                                std::to_string(s) + ": " + std::to_string(recv[s].size() / sizeof(T)) +
                                ", rank " + std::to_string(rank_) + ": " + std::to_string(n) + ")";
        abort(why);
        fail(ErrorCode::kInternal, why);
      }
    sum_in_rank_order(
        size_, [&](int s) { return recv[s].data(); }, data, n);
  }

  // Throws when the group already failed (here or on a peer).
  void check_failed_locked() {
    {
      std::lock_guard<std::mutex> lk(why_mu_);
      if (local_abort_) {
        const std::string why = local_why_;
        notify_peers_locked(why);
        throw Error(ErrorCode::kCancelled, "expert-parallel group aborted: " + why);
      }
    }
    if (failed_) throw Error(fail_code_, fail_why_);
    if (abort_req_ != MPI_REQUEST_NULL) {
      int got = 0;
      MPI_Status st;
      check_mpi(MPI_Test(&abort_req_, &got, &st), "MPI_Test");
      if (got) {
        int len = 0;
        MPI_Get_count(&st, MPI_CHAR, &len);
        failed_ = true;
        fail_code_ = ErrorCode::kCancelled;
        fail_why_ = "expert-parallel group aborted: " + std::string(abort_buf_.data(), std::max(len, 0));
        abort_sent_ = true;  // the group knows
        throw Error(fail_code_, fail_why_);
      }
    }
  }

  void notify_peers_locked(const std::string& why) {
    if (abort_sent_) return;
    abort_sent_ = true;
    if (!failed_) {
      failed_ = true;
      fail_code_ = ErrorCode::kCancelled;
      fail_why_ = "expert-parallel group aborted: " + why;
    }
    abort_msg_ = why.substr(0, kAbortCap - 1);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      MPI_Request r;
      if (MPI_Isend(abort_msg_.data(), static_cast<int>(abort_msg_.size()), MPI_CHAR, p, kTagAbort, comm_,
                    &r) == MPI_SUCCESS)
        abort_sends_.push_back(r);
    }
    // Short messages go out eagerly; give them a moment, never block on a dead peer.
    const auto until = Clock::now() + std::chrono::milliseconds(200);
    poll_all(abort_sends_, until, [] {});
  }

  // Posts `reqs` of the round, polls them; on a time-out or abort keeps the round alive and throws.
  void wait_round(std::shared_ptr<Round>& rd, Clock::time_point deadline, int64_t op, const char* phase) {
    bool ok = false;
    try {
      ok = poll_all(rd->reqs, deadline, [&] { check_failed_locked(); });
    } catch (...) {
      bury(rd);
      throw;
    }
    if (ok) return;
    bury(rd);
    const std::string why = "expert-parallel " + std::string(op_name(op)) + ": rank " +
                            std::to_string(rank_) + " timed out after " + std::to_string(o_.timeout.count()) +
                            " ms waiting for the other ranks (" + phase + ")";
    notify_peers_locked(why);
    failed_ = true;
    fail_code_ = ErrorCode::kTimeout;
    fail_why_ = why;
    throw Error(ErrorCode::kTimeout, why);
  }

  void bury(std::shared_ptr<Round>& rd) {
    for (MPI_Request& r : rd->reqs) {
      if (r == MPI_REQUEST_NULL) continue;
      MPI_Cancel(&r);
      MPI_Request_free(&r);
    }
    graveyard_.push_back(rd);
  }

  void exchange(int64_t op, const std::vector<Bytes>& send, std::vector<Bytes>& recv) {
    std::lock_guard<std::mutex> lk(mu_);
    check_failed_locked();
    const int64_t seq = ++seq_;
    const auto deadline = Clock::now() + o_.timeout;
    recv.assign(size_, Bytes());
    auto rd = std::make_shared<Round>();
    rd->send_h.resize(size_);
    rd->recv_h.resize(size_);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      MPI_Request r;
      check_mpi(MPI_Irecv(&rd->recv_h[p], 3, MPI_INT64_T, p, kTagHeader, comm_, &r), "MPI_Irecv");
      rd->reqs.push_back(r);
    }
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      if (send[p].size() > static_cast<size_t>(INT32_MAX))
        fail(ErrorCode::kUnsupported, "expert-parallel message over 2 GiB");
      rd->send_h[p] = {op, seq, static_cast<int64_t>(send[p].size())};
      MPI_Request r;
      check_mpi(MPI_Isend(&rd->send_h[p], 3, MPI_INT64_T, p, kTagHeader, comm_, &r), "MPI_Isend");
      rd->reqs.push_back(r);
    }
    wait_round(rd, deadline, op, "header");
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      const Header& h = rd->recv_h[p];
      if (h.op != op || h.seq != seq) {
        const std::string why = "rank " + std::to_string(p) + " called " + op_name(h.op) + " (collective #" +
                                std::to_string(h.seq) + ") while rank " + std::to_string(rank_) + " called " +
                                op_name(op) + " (#" + std::to_string(seq) + ")";
        notify_peers_locked(why);
        failed_ = true;
        fail_code_ = ErrorCode::kInternal;
        fail_why_ = "expert-parallel group: " + why;
        throw Error(ErrorCode::kInternal, fail_why_);
      }
    }
    rd->reqs.clear();
    rd->send_copy = send;  // the payloads must outlive the requests, even when this round fails
    rd->recv = &recv;
    for (int p = 0; p < size_; ++p) {
      if (p == rank_ || rd->recv_h[p].bytes == 0) continue;
      recv[p].resize(static_cast<size_t>(rd->recv_h[p].bytes));
      MPI_Request r;
      check_mpi(MPI_Irecv(recv[p].data(), static_cast<int>(recv[p].size()), MPI_BYTE, p, kTagData, comm_, &r),
                "MPI_Irecv");
      rd->reqs.push_back(r);
    }
    for (int p = 0; p < size_; ++p) {
      if (p == rank_ || send[p].empty()) continue;
      MPI_Request r;
      check_mpi(MPI_Isend(rd->send_copy[p].data(), static_cast<int>(send[p].size()), MPI_BYTE, p, kTagData,
                          comm_, &r),
                "MPI_Isend");
      rd->reqs.push_back(r);
    }
    try {
      wait_round(rd, deadline, op, "payload");
    } catch (...) {
      // The receive buffers belong to the caller: move them into the buried round.
      auto keep = std::make_shared<std::vector<Bytes> >(std::move(recv));
      graveyard_keep_.push_back(keep);
      recv.assign(size_, Bytes());
      throw;
    }
    rd->send_copy.clear();
    recv[rank_] = send[rank_];
  }

  MPI_Comm comm_;
  MpiOptions o_;
  int rank_ = 0, size_ = 1;
  bool single_host_ = false;
  std::mutex mu_;  // every MPI call of this transport
  int64_t seq_ = 0;
  bool failed_ = false, abort_sent_ = false;
  ErrorCode fail_code_ = ErrorCode::kCancelled;
  std::string fail_why_;
  std::mutex why_mu_;
  bool local_abort_ = false;
  std::string local_why_;
  std::vector<char> abort_buf_;
  MPI_Request abort_req_ = MPI_REQUEST_NULL;
  std::string abort_msg_;
  std::vector<MPI_Request> abort_sends_;
  std::vector<std::shared_ptr<Round> > graveyard_;
  std::vector<std::shared_ptr<std::vector<Bytes> > > graveyard_keep_;
};

}  // namespace

bool mpi_built() {
  return true;
}

bool mpi_active() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

bool mpi_ensure_initialized() {
  std::lock_guard<std::mutex> lk(g_init_mu);
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (fin) fail(ErrorCode::kInternal, "MPI was already finalised in this process");
  if (init) return false;
  int provided = 0;
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
  g_we_initialised = true;
  std::atexit(finalize_at_exit);
  return true;
}

int mpi_world_rank() {
  if (!mpi_active()) fail(ErrorCode::kInvalidArgument, "MPI is not initialised");
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int mpi_world_size() {
  if (!mpi_active()) fail(ErrorCode::kInvalidArgument, "MPI is not initialised");
  int s = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

std::shared_ptr<Transport> make_mpi_transport(MpiOptions opts) {
  if (!mpi_active())
    fail(ErrorCode::kInvalidArgument,
         "the MPI transport needs MPI initialised (MPI_Init_thread, or "
         "moert::ep::mpi_ensure_initialized)");
  int level = 0;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_SERIALIZED)
    fail(ErrorCode::kInvalidArgument,
         "the MPI transport needs MPI initialised with MPI_THREAD_SERIALIZED or "
         "MPI_THREAD_MULTIPLE (MPI_Init_thread)");
  // MPI_Comm_idup, polled: a rank that never arrives is a time-out, not a hang.
  MPI_Comm comm;
  MPI_Request req;
  check_mpi(MPI_Comm_idup(MPI_COMM_WORLD, &comm, &req), "MPI_Comm_idup");
  std::vector<MPI_Request> reqs{req};
  if (!poll_all(reqs, Clock::now() + opts.timeout, [] {}))
    fail(ErrorCode::kTimeout, "expert-parallel group over MPI: timed out after " +
                                  std::to_string(opts.timeout.count()) +
                                  " ms waiting for every rank to create its transport");
  return std::make_shared<MpiTransport>(comm, opts);
}

void mpi_abort_job(int code) {
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

#endif  // MOERT_HAVE_MPI

}  // namespace moert::ep
