// The expert-parallel Transport between GPU ranks, over NCCL (one rank per GPU; ranks may be processes or
// threads of one process). Built when CMake finds NCCL next to the CUDA toolkit (MOERT_HAVE_NCCL); without
// it the functions below exist and throw Error(kUnsupported), so callers need no #ifdef. No CUDA or NCCL
// type appears here.
//
// How it keeps transport.h's rules:
//  - The communicator is created non-blocking (ncclConfig_t.blocking = 0) and its state polled against a
//    deadline, so a rank that never arrives makes the others throw Error(kTimeout) instead of hanging in
//    init. The unique id travels by a file (rank 0 writes it, tmp + rename; the others poll for it before
//    any CUDA call) or over any Transport of the same group (e.g. MPI); one rank needs neither.
//  - Every collective runs on a private CUDA stream and every wait polls cudaStreamQuery and
//    ncclCommGetAsyncError against the deadline (options.timeout per call). A time-out aborts the
//    communicator (ncclCommAbort: the kernels stop, nothing is left running) and throws kTimeout; an NCCL
//    or CUDA error aborts it and throws kDevice. Never a blocking wait that could hang.
//  - Every collective but all_to_all_device (one NCCL round, for latency) starts with a header {operation,
//    sequence number, size} that each rank checks, so ranks calling collectives in different orders (or
//    all_reduce with different lengths) fail the group (kInternal) where the header rounds themselves
//    match; where they do not (a point-to-point round against a gather), the ranks time out.
//  - abort(why) aborts the communicator and remembers `why`: every later call on this rank throws
//    kCancelled naming it. NCCL has no side channel to tell the peers, so with a file bootstrap abort also
//    writes `why` to "<id_file>.abort", which the peers' waits check (every 10 ms) and throw kCancelled
//    naming it; with a Transport bootstrap the peers learn by their time-out (kTimeout).
//  - all_to_all and all_reduce_sum take host buffers (the small control data: counts, load statistics):
//    the payloads are staged through pinned host and device buffers (grown as needed) and exchanged with
//    grouped ncclSend/ncclRecv (sizes first, one header per peer). all_reduce_sum gathers every rank's
//    vector (ncclAllGather) and adds them on the host in ascending rank order, so every rank gets the same
//    bits. barrier is the header round alone (a 24-byte all-gather).
//  - Calls are serialised on the transport (a mutex), so a helper thread may run collectives; each call
//    makes the transport's device current (the calling thread may differ) and restores the caller's.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ep/transport.h"

namespace moert::ep {

struct NcclOptions {
  int rank = 0, size = 1;
  int device = -1;      // CUDA device of this rank; -1: rank % (number of devices)
  std::string id_file;  // bootstrap by a file: rank 0 writes the unique id there, the others poll for it.
                        // Rank 0 deletes it once the communicator is up; a stale file from a crashed run
                        // makes late ranks fail (time-out or NCCL error): remove it between runs.
  std::shared_ptr<Transport> bootstrap;      // or: a Transport of the same ranks carries rank 0's id
  std::chrono::milliseconds timeout{60000};  // creation, and every call
};

class NcclTransport : public Transport {
 public:
  // The CUDA device this rank uses.
  virtual int device() const = 0;
  // All-to-all of device buffers (on this rank's device): send holds the bytes for rank r at offset
  // send_bytes[0] + ... + send_bytes[r-1], recv receives rank r's bytes at the prefix sum of recv_bytes.
  // recv_bytes[r] must equal what rank r sends here (exchange the counts first, e.g. with all_to_all): NCCL
  // does not check it (a mismatch may time out or deliver wrong bytes).
  // Ordered after the work queued on `stream` (a cudaStream_t; nullptr: the legacy default stream); returns
  // when the exchange is complete (so the caller may use recv on any stream), with the same time-out and
  // failure rules as the other collectives.
  virtual void all_to_all_device(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                                 const std::vector<size_t>& recv_bytes, void* stream) = 0;
};

// True when this build has the NCCL transport.
bool nccl_built();
// This rank's end of an NCCL group; every rank of the group calls it (a collective). Throws
// kInvalidArgument for bad options (rank outside [0, size), no id_file or bootstrap when size > 1, both,
// a bootstrap of another size or rank, a device out of range, a timeout <= 0), kTimeout when the other
// ranks (or rank 0's id file) do not arrive in time, kUnsupported without NCCL or without a CUDA device,
// kDevice for CUDA/NCCL errors, kIo when the id file cannot be written.
std::shared_ptr<NcclTransport> make_nccl_transport(NcclOptions opts);

}  // namespace moert::ep
