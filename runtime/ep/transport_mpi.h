// The expert-parallel Transport across processes, over MPI (one rank per process; every rank of
// MPI_COMM_WORLD is one EP rank). Built when CMake finds MPI (MOERT_HAVE_MPI); without it the functions
// below exist and throw Error(kUnsupported), so callers need no #ifdef.
//
// How it keeps transport.h's rules:
//  - Every collective is point-to-point on a private communicator (MPI_Comm_dup of MPI_COMM_WORLD, so
//    nothing the host sends can match ours): first a header to every peer (operation, sequence number,
//    payload bytes), then the payloads, all non-blocking (MPI_Isend/MPI_Irecv) and polled with MPI_Testall
//    against a deadline. A rank that stops answering makes the others throw Error(kTimeout); a header
//    naming another operation or sequence number (ranks calling collectives in different orders) fails
//    the group (kInternal). Never a blocking MPI call that could hang.
//  - abort(why) sends `why` to every peer on a separate tag; each rank keeps a receive for it posted and
//    tests it while it polls, so every rank's pending and later collectives throw Error(kCancelled) naming
//    the reason. MPI_Abort is never called here (mpi_abort_job below is the host's last resort).
//  - all_reduce_sum: every rank sends its vector to every rank and each adds them in ascending rank order,
//    so every rank gets the same bits (O(ranks^2) messages: meant for counters and small statistics).
//  - Calls are serialised on the transport (a mutex), so a helper thread may run collectives; MPI must
//    then be initialised with at least MPI_THREAD_SERIALIZED (mpi_ensure_initialized asks for MULTIPLE).
//
// Initialising MPI is the host's job (MPI_Init_thread before loading). mpi_ensure_initialized() is for
// programs that want moert to do it: it initialises MPI when nobody has, and then finalises it at exit.
#pragma once
#include <chrono>
#include <memory>

#include "ep/transport.h"

namespace moert::ep {

struct MpiOptions {
  std::chrono::milliseconds timeout{60000};  // every wait
  std::chrono::microseconds delay{0};        // injected before each all-to-all (emulates a slow link)
  double bytes_per_second = 0;               // and its bandwidth (0: unlimited)
};

// True when this build has the MPI transport.
bool mpi_built();
// Initialises MPI (MPI_Init_thread, MPI_THREAD_MULTIPLE requested) unless the host already did; when it
// initialised it, MPI_Finalize runs at exit (std::atexit). Returns true when this call initialised MPI.
// Throws kUnsupported without MPI, kInternal when MPI was already finalised.
bool mpi_ensure_initialized();
// True once MPI is initialised and not yet finalised.
bool mpi_active();
// Rank and size in MPI_COMM_WORLD (MPI must be initialised).
int mpi_world_rank();
int mpi_world_size();
// One EP rank per process of MPI_COMM_WORLD. Collective over MPI_COMM_WORLD (MPI_Comm_dup): every rank
// creates its transport at the same point. Throws kUnsupported without MPI, kInvalidArgument when MPI is
// not initialised or was initialised without thread support (MPI_THREAD_SERIALIZED at least).
std::shared_ptr<Transport> make_mpi_transport(MpiOptions opts = {});
// Last resort: MPI_Abort(MPI_COMM_WORLD, code) (kills every process of the job). Never called by moert.
[[noreturn]] void mpi_abort_job(int code);

}  // namespace moert::ep
