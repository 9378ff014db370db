// The exchange expert parallelism needs between ranks, behind one interface: a variable-size all-to-all of
// byte buffers (dispatch and combine), an all-reduce (sum) for load statistics, a barrier, and abort.
//
// Rules every implementation keeps:
//  - Collectives are called by every rank of the group in the same order (a mismatch is detected where the
//    implementation can, and fails the group).
//  - Every wait has a time-out. A rank that fails calls abort() (run_collective below does it for any
//    exception); then every rank's pending and later collectives throw moert::Error (kCancelled, naming the
//    rank and its reason). A rank that stops answering makes the others throw kTimeout. Never a hang.
//  - all_to_all's buffers are host memory: the control data (counts, ids, load statistics), and the rows
//    themselves on transports that cannot move backend memory. A transport that can (moves_rows: in-process
//    ranks on the CPU, NCCL on CUDA) also exchanges rows of backend tensors directly (all_to_all_rows), so
//    dispatch and combine never stage activations through the host (runtime/ep/expert_parallel.cpp).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "util/error.h"

namespace moert {
class Backend;
}

namespace moert::ep {

using Bytes = std::vector<uint8_t>;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // send[r] goes to rank r (send[rank()] to this rank itself); recv[r] is what rank r sent to this rank.
  // send must have size() entries; recv is resized.
  virtual void all_to_all(const std::vector<Bytes>& send, std::vector<Bytes>& recv) = 0;
  // data[i] = sum over ranks of data[i] (every rank passes the same n). Summed in ascending rank order, so
  // every rank gets the same bits.
  virtual void all_reduce_sum(int64_t* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  virtual void barrier() = 0;
  // Fails the group: every rank's pending and later collectives throw Error(kCancelled) with `why`.
  virtual void abort(const std::string& why) = 0;
  virtual std::chrono::milliseconds timeout() const = 0;
  // True when every rank shares this host's memory (in-process ranks; MPI ranks on one node): the same
  // answer on every rank. Exchanges are then about as fast as memory (the overlap's default uses this).
  virtual bool single_host() const { return false; }

  // Whether all_to_all_rows moves tensors of a backend on `device` (the answer is the same on every rank).
  virtual bool moves_rows(DeviceKind device) const {
    (void)device;
    return false;
  }
  // All-to-all of rows of backend tensors, without the host where the transport allows (moves_rows):
  // send [sum send_rows, cols] and recv [sum recv_rows, cols] are packed (ld == cols, the same dtype and
  // cols on every rank; empty when they have no rows), rank r's rows after those for ranks < r. recv is
  // allocated by the caller and recv_rows[r] must equal what rank r sends here (learn it from an
  // all_to_all first). Returns when recv holds every row; send must stay unwritten until this rank's next
  // collective (a peer may still be reading it). A device transport orders the exchange after
  // `after` (a b.queue_point() taken when send was written; null: after everything queued on b's stream
  // now). A count mismatch fails the group (kInternal) where the transport can see it.
  virtual void all_to_all_rows(Backend& b, const Tensor& send, const std::vector<int64_t>& send_rows,
                               Tensor& recv, const std::vector<int64_t>& recv_rows,
                               const std::shared_ptr<void>& after) {
    (void)b, (void)send, (void)send_rows, (void)recv, (void)recv_rows, (void)after;
    fail(ErrorCode::kUnsupported, "this expert-parallel transport cannot exchange backend memory directly");
  }
};

// For all_to_all_rows implementations: checks the arguments (a count per rank, packed tensors on `device`
// with those rows, the same row bytes on both sides) and returns the bytes of one row. Error(kInternal) on
// a mismatch.
inline size_t check_rows(int ranks, DeviceKind device, const Tensor& send,
                         const std::vector<int64_t>& send_rows, const Tensor& recv,
                         const std::vector<int64_t>& recv_rows) {
  if (static_cast<int>(send_rows.size()) != ranks || static_cast<int>(recv_rows.size()) != ranks)
    fail(ErrorCode::kInternal, "all_to_all_rows: row counts for " + std::to_string(send_rows.size()) +
                                   " and " + std::to_string(recv_rows.size()) + " ranks in a group of " +
                                   std::to_string(ranks));
  int64_t sent = 0, received = 0;
  for (int i = 0; i < ranks; ++i) sent += send_rows[i], received += recv_rows[i];
  auto packed = [device](const Tensor& t, int64_t rows, const char* what) {
    if (rows > 0 && (t.device != device || t.rows != rows || t.ld != t.cols))
      fail(ErrorCode::kInternal, std::string("all_to_all_rows: the ") + what + " tensor is not a packed " +
                                     (device == DeviceKind::kCpu ? "host" : "device") + " tensor of " +
                                     std::to_string(rows) + " rows");
  };
  packed(send, sent, "send");
  packed(recv, received, "receive");
  const size_t s = static_cast<size_t>(send.cols) * dtype_size(send.dtype),
               v = static_cast<size_t>(recv.cols) * dtype_size(recv.dtype);
  if (sent > 0 && received > 0 && s != v)
    fail(ErrorCode::kInternal, "all_to_all_rows: send rows of " + std::to_string(s) +
                                   " bytes, receive rows of " + std::to_string(v));
  return sent > 0 ? s : v;
}

// The all_reduce_sum rule, for implementations: data[i] = the sum over ranks s = 0, 1, ... (in that order,
// so every rank gets the same bits) of the i-th T at part(s), rank s's n values (possibly unaligned bytes).
template <class T, class Part>
void sum_in_rank_order(int ranks, const Part& part, T* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    T acc = 0;
    for (int s = 0; s < ranks; ++s) {
      T v;
      std::memcpy(&v, static_cast<const uint8_t*>(static_cast<const void*>(part(s))) + i * sizeof(T),
                  sizeof(T));
      acc += v;
    }
    data[i] = acc;
  }
}

// Runs fn; on any exception aborts the group (so every other rank's collectives fail too) and rethrows.
void run_collective(Transport& t, const std::function<void()>& fn);

// A slow link, emulated before each all-to-all (benchmarks, tests): sleeps delay + (bytes this rank sends
// to other ranks) / bytes_per_second (0: no bandwidth term).
void emulate_slow_link(std::chrono::microseconds delay, double bytes_per_second,
                       const std::vector<Bytes>& send, int self);
void emulate_slow_link(std::chrono::microseconds delay, double bytes_per_second, size_t bytes_to_others);

// In-process ranks: threads sharing one group object (tests, single-host CPU use).
struct InProcessOptions {
  std::chrono::milliseconds timeout{30000};  // every wait
  std::chrono::microseconds delay{0};        // injected before each all-to-all (emulates a slow link)
  double bytes_per_second = 0;               // and its bandwidth (0: unlimited)
  bool rows_in_messages = false;  // carry rows inside all_to_all's messages, as MPI does (moves_rows false)
};

class InProcessGroup;

// A group of `size` ranks; transports(r) is rank r's end. The group lives as long as any transport.
std::vector<std::shared_ptr<Transport>> make_in_process_group(int size, InProcessOptions opts = {});

}  // namespace moert::ep
