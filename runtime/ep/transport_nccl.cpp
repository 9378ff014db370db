#include "ep/transport_nccl.h"

#include "backend/backend.h"
#include "util/error.h"

#ifdef MOERT_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>
#endif

namespace moert::ep {

#ifndef MOERT_HAVE_NCCL

bool nccl_built() {
  return false;
}

std::shared_ptr<NcclTransport> make_nccl_transport(NcclOptions) {
  fail(ErrorCode::kUnsupported,
       "this build of moert has no NCCL transport (NCCL and the CUDA backend were not "
       "found when it was built)");
}

#else  // MOERT_HAVE_NCCL

namespace {

using Clock = std::chrono::steady_clock;

// Polling back-off: yield first (a small exchange takes tens of microseconds), then short sleeps so ranks
// that share cores leave them to the ranks that compute.
void back_off(int spin) {
  if (spin < 64)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(spin < 1024 ? 20 : 200));
}

std::string ms(std::chrono::milliseconds t) {
  return std::to_string(t.count()) + " ms";
}

std::string nccl_msg(ncclResult_t r, ncclComm_t comm) {
  std::string m = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) m += std::string(" (") + last + ")";
  return m;
}

// Makes `device` current for a scope and restores the caller's device (the calling thread may run a
// backend on another device).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&prev_) != cudaSuccess) prev_ = -1;
    err_ = prev_ == device ? cudaSuccess : cudaSetDevice(device);
  }
  ~DeviceScope() {
    if (prev_ >= 0 && err_ == cudaSuccess) cudaSetDevice(prev_);
  }
  cudaError_t error() const { return err_; }

 private:
  int prev_ = -1;
  cudaError_t err_ = cudaSuccess;
};

enum Op : int64_t { kAllToAll = 1, kReduceI64 = 2, kReduceF64 = 3, kBarrier = 4, kAllToAllDevice = 5 };

const char* op_name(int64_t op) {
  switch (op) {
    case kAllToAll:
      return "all_to_all";
    case kReduceI64:
      return "all_reduce(int64)";
    case kReduceF64:
      return "all_reduce(double)";
    case kBarrier:
      return "barrier";
    case kAllToAllDevice:
      return "all_to_all_device";
  }
  return "?";
}

// The header every collective starts with: {operation, sequence number, bytes or elements}.
struct Header {
  int64_t op, seq, n;
};

void validate(const NcclOptions& o) {
  auto bad = [](const std::string& m) { fail(ErrorCode::kInvalidArgument, "NCCL transport: " + m); };
  if (o.size < 1) bad("size must be >= 1 (got " + std::to_string(o.size) + ")");
  if (o.rank < 0 || o.rank >= o.size)
    bad("rank " + std::to_string(o.rank) + " is outside [0, " + std::to_string(o.size) + ")");
  if (o.device < -1) bad("device must be >= 0, or -1 for rank % device count");
  if (o.timeout.count() <= 0) bad("timeout must be > 0 ms");
  if (o.size == 1) return;
  if (o.id_file.empty() && !o.bootstrap)
    bad("a group of " + std::to_string(o.size) +
        " ranks needs id_file or bootstrap to share rank 0's NCCL id");
  if (!o.id_file.empty() && o.bootstrap) bad("give id_file or bootstrap, not both");
  if (o.bootstrap && (o.bootstrap->size() != o.size || o.bootstrap->rank() != o.rank))
    bad("the bootstrap transport is rank " + std::to_string(o.bootstrap->rank()) + " of " +
        std::to_string(o.bootstrap->size()) + ", this rank is " + std::to_string(o.rank) + " of " +
        std::to_string(o.size));
}

// Rank > 0 of a file bootstrap: polls for rank 0's id (written by rename, so it is complete when it exists).
ncclUniqueId wait_for_id_file(const NcclOptions& o, Clock::time_point deadline) {
  for (;;) {
    std::ifstream f(o.id_file, std::ios::binary);
    if (f) {
      const std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (s.size() != sizeof(ncclUniqueId))
        fail(ErrorCode::kFormat, "NCCL transport: " + o.id_file + " is not an NCCL id file (" +
                                     std::to_string(s.size()) + " bytes, expected " +
                                     std::to_string(sizeof(ncclUniqueId)) + ")");
      ncclUniqueId id;
      std::memcpy(&id, s.data(), sizeof id);
      return id;
    }
    if (Clock::now() >= deadline)
      fail(ErrorCode::kTimeout, "NCCL transport: rank " + std::to_string(o.rank) + " timed out after " +
                                    ms(o.timeout) + " waiting for rank 0's NCCL id in " + o.id_file);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Writes `bytes` to `path` whole or not at all (a temporary file renamed over it). Returns false on failure.
bool write_file_atomic(const std::string& path, const void* bytes, size_t n) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return false;
    f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
    if (!f.flush()) {
      f.close();
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

std::string abort_file(const std::string& id_file) {
  return id_file + ".abort";
}

int pick_device(const NcclOptions& o) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    fail(ErrorCode::kUnsupported, std::string("NCCL transport: no CUDA device (cudaGetDeviceCount: ") +
                                      (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  }
  const int d = o.device >= 0 ? o.device : o.rank % n;
  if (d >= n)
    fail(ErrorCode::kInvalidArgument, "NCCL transport: device " + std::to_string(d) + " does not exist (" +
                                          std::to_string(n) + " CUDA devices)");
  return d;
}

void check_cuda(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  fail(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice,
       "NCCL transport: " + what + ": " + cudaGetErrorString(e));
}

// Creates the communicator non-blocking and polls its state, so a rank that never arrives is a time-out.
ncclComm_t init_comm(const NcclOptions& o, const ncclUniqueId& id, Clock::time_point deadline) {
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, o.size, id, o.rank, &cfg);
  for (int spin = 0; r == ncclInProgress; ++spin) {
    if (Clock::now() >= deadline) {
      ncclCommAbort(comm);
      fail(ErrorCode::kTimeout, "NCCL transport: rank " + std::to_string(o.rank) + " timed out after " +
                                    ms(o.timeout) + " waiting for the other " + std::to_string(o.size - 1) +
                                    " ranks to create the NCCL communicator");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(spin < 100 ? 100 : 1000));
    if (ncclCommGetAsyncError(comm, &r) != ncclSuccess) r = ncclInternalError;
  }
  if (r != ncclSuccess) {
    const std::string m = nccl_msg(r, comm);
    if (comm) ncclCommAbort(comm);
    fail(ErrorCode::kDevice,
         "NCCL transport: creating the communicator failed on rank " + std::to_string(o.rank) + ": " + m);
  }
  return comm;
}

class NcclTransportImpl final : public NcclTransport {
 public:
  NcclTransportImpl(const NcclOptions& o, int device, ncclComm_t comm)
      : rank_(o.rank), size_(o.size), device_(device), timeout_(o.timeout), id_file_(o.id_file), comm_(comm) {
    try {
      check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
      check_cuda(cudaEventCreateWithFlags(&ev_, cudaEventDisableTiming), "cudaEventCreate");
    } catch (...) {
      release();
      throw;
    }
  }

  ~NcclTransportImpl() override {
    std::lock_guard<std::mutex> lk(mu_);
    DeviceScope dev(device_);
    if (comm_) {
      // Finalize waits until the group is quiescent; bounded, and an abort when it does not get there.
      ncclResult_t st = ncclCommFinalize(comm_);
      const auto deadline = Clock::now() + timeout_;
      for (int spin = 0; st == ncclInProgress && Clock::now() < deadline; ++spin) {
        back_off(spin);
        if (ncclCommGetAsyncError(comm_, &st) != ncclSuccess) st = ncclInternalError;
      }
      if (st == ncclSuccess)
        ncclCommDestroy(comm_);
      else
        ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    release();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const override { return device_; }
  std::chrono::milliseconds timeout() const override { return timeout_; }

  void all_to_all(const std::vector<Bytes>& send, std::vector<Bytes>& recv) override {
    if (static_cast<int>(send.size()) != size_)
      fail(ErrorCode::kInternal, "all_to_all: " + std::to_string(send.size()) + " send buffers for " +
                                     std::to_string(size_) + " ranks");
    std::lock_guard<std::mutex> lk(mu_);
    DeviceScope dev(device_);
    const auto deadline = begin_locked(dev);
    const int64_t seq = ++seq_;
    const char* op = op_name(kAllToAll);

    // Sizes first: one header to every rank (itself included), point to point.
    const size_t hb = size_ * sizeof(Header);
    reserve_locked(2 * hb);
    auto* hs = reinterpret_cast<Header*>(host_);
    for (int p = 0; p < size_; ++p) hs[p] = {kAllToAll, seq, static_cast<int64_t>(send[p].size())};
    copy_locked(dev_, host_, hb, cudaMemcpyHostToDevice);
    group_locked(deadline, op, "sizes", [&](ncclResult_t& r) {
      for (int p = 0; p < size_ && r == ncclSuccess; ++p) {
        r = ncclSend(dev_ + p * sizeof(Header), sizeof(Header), ncclUint8, p, comm_, stream_);
        if (r == ncclSuccess)
          r = ncclRecv(dev_ + hb + p * sizeof(Header), sizeof(Header), ncclUint8, p, comm_, stream_);
      }
    });
    copy_locked(host_ + hb, dev_ + hb, hb, cudaMemcpyDeviceToHost);
    wait_locked(deadline, op, "sizes");
    std::vector<size_t> rn(size_), soff(size_ + 1, 0), roff(size_ + 1, 0);
    for (int p = 0; p < size_; ++p) {
      Header h;
      std::memcpy(&h, host_ + hb + p * sizeof(Header), sizeof h);
      check_header_locked(h, kAllToAll, seq, p, -1);
      rn[p] = static_cast<size_t>(h.n);
      soff[p + 1] = soff[p] + send[p].size();
      roff[p + 1] = roff[p] + rn[p];
    }

    // Then the payloads, staged through pinned host and device memory: [send | recv].
    const size_t ts = soff[size_], tr = roff[size_];
    recv.assign(size_, Bytes());
    if (ts + tr == 0) return;
    reserve_locked(ts + tr);
    for (int p = 0; p < size_; ++p)
      if (!send[p].empty()) std::memcpy(host_ + soff[p], send[p].data(), send[p].size());
    if (ts) copy_locked(dev_, host_, ts, cudaMemcpyHostToDevice);
    group_locked(deadline, op, "payload", [&](ncclResult_t& r) {
      for (int p = 0; p < size_ && r == ncclSuccess; ++p) {
        if (send[p].size()) r = ncclSend(dev_ + soff[p], send[p].size(), ncclUint8, p, comm_, stream_);
        if (r == ncclSuccess && rn[p]) r = ncclRecv(dev_ + ts + roff[p], rn[p], ncclUint8, p, comm_, stream_);
      }
    });
    if (tr) copy_locked(host_ + ts, dev_ + ts, tr, cudaMemcpyDeviceToHost);
    wait_locked(deadline, op, "payload");
    for (int p = 0; p < size_; ++p) recv[p].assign(host_ + ts + roff[p], host_ + ts + roff[p + 1]);
  }

  void all_reduce_sum(int64_t* data, size_t n) override { reduce(kReduceI64, data, n); }
  void all_reduce_sum(double* data, size_t n) override { reduce(kReduceF64, data, n); }

  void barrier() override {
    std::lock_guard<std::mutex> lk(mu_);
    DeviceScope dev(device_);
    const auto deadline = begin_locked(dev);
    gather_header_locked(kBarrier, ++seq_, 0, deadline);
  }

  bool moves_rows(DeviceKind device) const override { return device == DeviceKind::kCuda; }

  // Rows of device tensors: all_to_all_device over their bytes, after the work queued on b's stream.
  void all_to_all_rows(Backend& b, const Tensor& send, const std::vector<int64_t>& send_rows, Tensor& recv,
                       const std::vector<int64_t>& recv_rows, const std::shared_ptr<void>& after) override {
    const size_t rb = check_rows(size_, DeviceKind::kCuda, send, send_rows, recv, recv_rows);
    std::vector<size_t> sb(size_), rbytes(size_);
    for (int r = 0; r < size_; ++r) {
      sb[r] = static_cast<size_t>(send_rows[r]) * rb;
      rbytes[r] = static_cast<size_t>(recv_rows[r]) * rb;
    }
    device_round(send.data, sb, recv.data, rbytes, b.native_stream(), static_cast<cudaEvent_t>(after.get()));
  }

  void all_to_all_device(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                         const std::vector<size_t>& recv_bytes, void* stream) override {
    device_round(send, send_bytes, recv, recv_bytes, stream, nullptr);
  }

  // all_to_all_device, ordered after `after` when given, else after the work queued on `stream` now.
  void device_round(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                    const std::vector<size_t>& recv_bytes, void* stream, cudaEvent_t after) {
    if (static_cast<int>(send_bytes.size()) != size_ || static_cast<int>(recv_bytes.size()) != size_)
      fail(ErrorCode::kInvalidArgument, "all_to_all_device: " + std::to_string(send_bytes.size()) +
                                            " send and " + std::to_string(recv_bytes.size()) +
                                            " receive sizes for " + std::to_string(size_) + " ranks");
    if (send_bytes[rank_] != recv_bytes[rank_])
      fail(ErrorCode::kInvalidArgument, "all_to_all_device: rank " + std::to_string(rank_) +
                                            " sends itself " + std::to_string(send_bytes[rank_]) +
                                            " bytes but expects " + std::to_string(recv_bytes[rank_]));
    std::lock_guard<std::mutex> lk(mu_);
    DeviceScope dev(device_);
    const auto deadline = begin_locked(dev);
    ++seq_;
    const char* op = op_name(kAllToAllDevice);
    // After the caller's queued work (or its queue point), on the private stream.
    if (!after) {
      cuda_locked(cudaEventRecord(ev_, static_cast<cudaStream_t>(stream)), "cudaEventRecord");
      after = ev_;
    }
    cuda_locked(cudaStreamWaitEvent(stream_, after, 0), "cudaStreamWaitEvent");
    const auto* s = static_cast<const uint8_t*>(send);
    auto* d = static_cast<uint8_t*>(recv);
    group_locked(deadline, op, "payload", [&](ncclResult_t& r) {
      size_t so = 0, ro = 0;
      for (int p = 0; p < size_ && r == ncclSuccess; ++p) {
        if (send_bytes[p]) r = ncclSend(s + so, send_bytes[p], ncclUint8, p, comm_, stream_);
        if (r == ncclSuccess && recv_bytes[p])
          r = ncclRecv(d + ro, recv_bytes[p], ncclUint8, p, comm_, stream_);
        so += send_bytes[p];
        ro += recv_bytes[p];
      }
    });
    wait_locked(deadline, op, "payload");
  }

  void abort(const std::string& why) override {
    {
      std::lock_guard<std::mutex> lk(why_mu_);
      if (!abort_requested_) {
        abort_why_ = why;
        abort_requested_ = true;
      }
    }
    // A collective in flight on another thread sees abort_requested_ while it polls and aborts itself.
    std::unique_lock<std::mutex> lk(mu_, std::try_to_lock);
    if (lk.owns_lock()) {
      DeviceScope dev(device_);
      apply_abort_locked();
    }
  }

 private:
  template <class T>
  void reduce(int64_t op, T* data, size_t n) {
    std::lock_guard<std::mutex> lk(mu_);
    DeviceScope dev(device_);
    const auto deadline = begin_locked(dev);
    gather_header_locked(op, ++seq_, static_cast<int64_t>(n), deadline);
    if (n == 0) return;
    const size_t b = n * sizeof(T);
    reserve_locked(b * (size_ + 1));
    std::memcpy(host_, data, b);
    copy_locked(dev_, host_, b, cudaMemcpyHostToDevice);
    settle_locked(ncclAllGather(dev_, dev_ + b, b, ncclUint8, comm_, stream_), deadline, op_name(op), "data");
    copy_locked(host_ + b, dev_ + b, b * size_, cudaMemcpyDeviceToHost);
    wait_locked(deadline, op_name(op), "data");
    sum_in_rank_order(
        size_, [&](int s) { return host_ + b * (s + 1); }, data, n);
  }

  // Every rank's {op, seq, n} (an all-gather of 24 bytes); a rank that disagrees fails the group.
  void gather_header_locked(int64_t op, int64_t seq, int64_t n, Clock::time_point deadline) {
    const size_t hb = sizeof(Header);
    reserve_locked(hb * (size_ + 1));
    const Header mine{op, seq, n};
    std::memcpy(host_, &mine, hb);
    copy_locked(dev_, host_, hb, cudaMemcpyHostToDevice);
    settle_locked(ncclAllGather(dev_, dev_ + hb, hb, ncclUint8, comm_, stream_), deadline, op_name(op),
                  "header");
    copy_locked(host_ + hb, dev_ + hb, hb * size_, cudaMemcpyDeviceToHost);
    wait_locked(deadline, op_name(op), "header");
    for (int p = 0; p < size_; ++p) {
      Header h;
      std::memcpy(&h, host_ + hb * (p + 1), hb);
      check_header_locked(h, op, seq, p, n);
    }
  }

  // n < 0: any size (all_to_all); else every rank must pass the same n.
  void check_header_locked(const Header& h, int64_t op, int64_t seq, int peer, int64_t n) {
    if (h.op == op && h.seq == seq && (n < 0 ? h.n >= 0 : h.n == n)) return;
    std::string why;
    if (h.op == op && h.seq == seq)
      why = std::string(op_name(op)) + ": ranks passed different lengths (rank " + std::to_string(peer) +
            ": " + std::to_string(h.n) + ", rank " + std::to_string(rank_) + ": " + std::to_string(n) + ")";
    else
      why = "rank " + std::to_string(peer) + " called " + op_name(h.op) + " (collective #" +
            std::to_string(h.seq) + ") while rank " + std::to_string(rank_) + " called " + op_name(op) +
            " (#" + std::to_string(seq) + ")";
    fail_group_locked(ErrorCode::kInternal, "expert-parallel group: " + why);
  }

  // Start of every collective: the device current, the group not failed. Returns the call's deadline.
  Clock::time_point begin_locked(const DeviceScope& dev) {
    check_failed_locked();
    if (dev.error() != cudaSuccess) {
      (void)cudaGetLastError();
      fail(ErrorCode::kDevice, "NCCL transport: cudaSetDevice(" + std::to_string(device_) +
                                   "): " + cudaGetErrorString(dev.error()));
    }
    return Clock::now() + timeout_;
  }

  // Throws when the group already failed: aborted here, failed here earlier, or aborted by a peer (file).
  void check_failed_locked() {
    if (abort_requested_.load()) {
      apply_abort_locked();
      throw Error(ErrorCode::kCancelled, fail_why_);
    }
    if (failed_) throw Error(fail_code_, fail_why_);
    if (id_file_.empty() || Clock::now() < next_file_check_) return;
    next_file_check_ = Clock::now() + std::chrono::milliseconds(10);
    std::ifstream f(abort_file(id_file_), std::ios::binary);
    if (!f) return;
    const std::string why((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    abort_comm_locked();
    failed_ = true;
    fail_code_ = ErrorCode::kCancelled;
    fail_why_ = "expert-parallel group aborted: " + why;
    throw Error(fail_code_, fail_why_);
  }

  void apply_abort_locked() {
    if (abort_applied_) return;
    abort_applied_ = true;
    std::string why;
    {
      std::lock_guard<std::mutex> lk(why_mu_);
      why = abort_why_;
    }
    abort_comm_locked();
    publish_abort_locked(why);
    failed_ = true;
    fail_code_ = ErrorCode::kCancelled;
    fail_why_ = "expert-parallel group aborted: " + why;
  }

  [[noreturn]] void fail_group_locked(ErrorCode code, const std::string& why) {
    abort_comm_locked();
    publish_abort_locked(why);
    failed_ = true;
    fail_code_ = code;
    fail_why_ = why;
    throw Error(code, why);
  }

  void abort_comm_locked() {
    if (!comm_) return;
    ncclCommAbort(comm_);  // stops the kernels; what is queued behind them on stream_ still runs
    comm_ = nullptr;
  }

  // The peers of a file bootstrap poll "<id_file>.abort" (NCCL has no channel for it).
  void publish_abort_locked(const std::string& why) {
    if (published_ || id_file_.empty()) return;
    published_ = true;
    write_file_atomic(abort_file(id_file_), why.data(), why.size());
  }

  void cuda_locked(cudaError_t e, const char* what) {
    if (e == cudaSuccess) return;
    (void)cudaGetLastError();
    fail_group_locked(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice,
                      std::string("NCCL transport: ") + what + ": " + cudaGetErrorString(e));
  }

  void copy_locked(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    cuda_locked(cudaMemcpyAsync(dst, src, n, kind, stream_), "cudaMemcpyAsync");
  }

  // The staging buffers (pinned host, device), grown to at least `bytes` (only between rounds: stream_ idle).
  void reserve_locked(size_t bytes) {
    if (bytes <= cap_) return;
    const size_t cap = std::max({bytes, cap_ * 2, size_t(4096)});
    if (dev_) cudaFree(dev_);
    if (host_) cudaFreeHost(host_);
    dev_ = host_ = nullptr;
    cap_ = 0;
    cuda_locked(cudaMalloc(reinterpret_cast<void**>(&dev_), cap), "cudaMalloc of the staging buffer");
    cuda_locked(cudaMallocHost(reinterpret_cast<void**>(&host_), cap),
                "cudaMallocHost of the staging buffer");
    cap_ = cap;
  }

  // ncclGroupStart, body (sets r to the first failure), ncclGroupEnd (always, so this thread leaves the
  // group), then the communicator settled.
  template <class Body>
  void group_locked(Clock::time_point deadline, const char* op, const char* phase, Body&& body) {
    ncclResult_t r = ncclGroupStart();
    if (r == ncclSuccess) {
      body(r);
      const ncclResult_t e = ncclGroupEnd();
      if (r == ncclSuccess) r = e;
    }
    settle_locked(r, deadline, op, phase);
  }

  // A non-blocking communicator may answer ncclInProgress: then nothing further may be queued until its state
  // leaves it. Polled against the deadline.
  void settle_locked(ncclResult_t r, Clock::time_point deadline, const char* op, const char* phase) {
    for (int spin = 0; r == ncclInProgress; ++spin) {
      poll_checks_locked(deadline, op, phase);
      back_off(spin);
      if (ncclCommGetAsyncError(comm_, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r != ncclSuccess)
      fail_group_locked(ErrorCode::kDevice, std::string("expert-parallel ") + op +
                                                " over NCCL failed on rank " + std::to_string(rank_) + " (" +
                                                phase + "): " + nccl_msg(r, comm_));
  }

  // Waits for stream_ (everything queued for this round), watching NCCL's state, aborts and the deadline.
  void wait_locked(Clock::time_point deadline, const char* op, const char* phase) {
    for (int spin = 0;; ++spin) {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) cuda_locked(e, "cudaStreamQuery");
      ncclResult_t st = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &st) != ncclSuccess) st = ncclInternalError;
      if (st != ncclSuccess && st != ncclInProgress)
        fail_group_locked(ErrorCode::kDevice, std::string("expert-parallel ") + op +
                                                  " over NCCL failed on rank " + std::to_string(rank_) +
                                                  " (" + phase + "): " + nccl_msg(st, comm_));
      poll_checks_locked(deadline, op, phase);
      back_off(spin);
    }
  }

  void poll_checks_locked(Clock::time_point deadline, const char* op, const char* phase) {
    check_failed_locked();
    if (Clock::now() < deadline) return;
    fail_group_locked(ErrorCode::kTimeout, std::string("expert-parallel ") + op + ": rank " +
                                               std::to_string(rank_) + " timed out after " + ms(timeout_) +
                                               " waiting for the other ranks (NCCL, " + phase + ")");
  }

  void release() {
    if (stream_) cudaStreamSynchronize(stream_);  // after an abort the kernels have stopped
    if (dev_) cudaFree(dev_);
    if (host_) cudaFreeHost(host_);
    if (ev_) cudaEventDestroy(ev_);
    if (stream_) cudaStreamDestroy(stream_);
    dev_ = host_ = nullptr;
    ev_ = nullptr;
    stream_ = nullptr;
  }

  const int rank_, size_, device_;
  const std::chrono::milliseconds timeout_;
  const std::string id_file_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ev_ = nullptr;
  uint8_t *dev_ = nullptr, *host_ = nullptr;
  size_t cap_ = 0;
  std::mutex mu_;  // every call on the communicator, the stream and the buffers
  int64_t seq_ = 0;
  bool failed_ = false, abort_applied_ = false, published_ = false;
  ErrorCode fail_code_ = ErrorCode::kCancelled;
  std::string fail_why_;
  Clock::time_point next_file_check_{};
  std::mutex why_mu_;
  std::atomic<bool> abort_requested_{false};
  std::string abort_why_;
};

// Rank 0's id to every rank over the bootstrap transport: 'I' + id, or 'E' + error code + message when rank 0
// could not make one (so the others fail at once instead of timing out).
ncclUniqueId exchange_id(const NcclOptions& o, const ncclUniqueId* mine, const Error* err) {
  std::vector<Bytes> send(o.size), recv;
  if (o.rank == 0) {
    Bytes msg;
    if (err) {
      const std::string m = err->what();
      msg.push_back('E');
      msg.push_back(static_cast<uint8_t>(err->code()));
      msg.insert(msg.end(), m.begin(), m.end());
    } else {
      msg.push_back('I');
      msg.insert(msg.end(), mine->internal, mine->internal + sizeof(ncclUniqueId));
    }
    send.assign(o.size, msg);
  }
  o.bootstrap->all_to_all(send, recv);
  const Bytes& m = recv.at(0);
  if (!m.empty() && m[0] == 'E' && m.size() >= 2)
    fail(static_cast<ErrorCode>(m[1]),
         "NCCL transport: rank 0 could not create the group: " + std::string(m.begin() + 2, m.end()));
  if (m.size() != 1 + sizeof(ncclUniqueId) || m[0] != 'I')
    fail(ErrorCode::kInternal,
         "NCCL transport: rank 0's id message over the bootstrap transport is malformed");
  ncclUniqueId id;
  std::memcpy(&id, m.data() + 1, sizeof id);
  return id;
}

ncclUniqueId make_id(int device) {
  DeviceScope dev(device);
  check_cuda(dev.error(), "cudaSetDevice(" + std::to_string(device) + ")");
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) fail(ErrorCode::kDevice, "NCCL transport: ncclGetUniqueId: " + nccl_msg(r, nullptr));
  return id;
}

}  // namespace

bool nccl_built() {
  return true;
}

std::shared_ptr<NcclTransport> make_nccl_transport(NcclOptions o) {
  validate(o);
  const auto deadline = Clock::now() + o.timeout;
  const bool by_file = o.size > 1 && !o.id_file.empty(), by_transport = o.size > 1 && o.bootstrap;
  ncclUniqueId id{};
  int device = -1;
  if (by_file && o.rank > 0) {
    id = wait_for_id_file(o, deadline);  // before any CUDA call
    device = pick_device(o);
  } else if (by_transport) {
    if (o.rank == 0) {
      try {
        device = pick_device(o);
        id = make_id(device);
      } catch (const Error& e) {
        exchange_id(o, nullptr, &e);  // tell the others, then fail here too
        throw;
      }
      exchange_id(o, &id, nullptr);
    } else {
      id = exchange_id(o, nullptr, nullptr);
      device = pick_device(o);
    }
  } else {  // one rank, or rank 0 of a file bootstrap
    device = pick_device(o);
    id = make_id(device);
    if (by_file) {
      std::remove(abort_file(o.id_file).c_str());  // a stale notice from an earlier run
      if (!write_file_atomic(o.id_file, &id, sizeof id))
        fail(ErrorCode::kIo, "NCCL transport: cannot write the NCCL id to " + o.id_file);
    }
  }
  DeviceScope dev(device);
  check_cuda(dev.error(), "cudaSetDevice(" + std::to_string(device) + ")");
  ncclComm_t comm = init_comm(o, id, deadline);
  // Every rank has read the id once the communicator is up: no stale file for the next run.
  if (by_file && o.rank == 0) std::remove(o.id_file.c_str());
  try {
    return std::make_shared<NcclTransportImpl>(o, device, comm);
  } catch (...) {
    ncclCommAbort(comm);
    throw;
  }
}

#endif  // MOERT_HAVE_NCCL

}  // namespace moert::ep
