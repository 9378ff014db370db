// The tables the provider libraries hand to libmoert (see provider_loader.h). Both sides are built from
// one source tree by one compiler, so the tables carry C++ types; the version check refuses a provider
// from another moert build (a different MOERT_PROVIDER_VERSION or table layout) instead of crashing.
#pragma once
#include <cstring>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "ep/transport_mpi.h"
#include "ep/transport_nccl.h"
#include "provider/provider_loader.h"
#include "util/error.h"

#ifndef MOERT_PROVIDER_VERSION
#error "MOERT_PROVIDER_VERSION (the moert version string) must be defined by the build"
#endif

namespace moert::provider {

// Raised whenever a table below changes.
// 2: the step-batch Backend interface (graphs, grouped MoE, sample); 3: Transport moves rows
// (all_to_all_rows), Backend::native_stream, queue_point and byte counters; 4: Backend::act_dtype,
// supports_bf16_activations, CudaGemmStats::lt_bf16; 5: Backend::path_info.
constexpr int kAbi = 5;

// libmoert_cuda: the CUDA backend (cuBLASLt) and the NCCL transport.
struct CudaTable {
  int abi;
  const char* version;  // MOERT_PROVIDER_VERSION of the provider
  std::unique_ptr<Backend> (*make_backend)(int device_index);
  int (*device_count)();
  void (*synchronize)(Backend&);
  CudaGemmStats (*gemm_stats)(const Backend&);
  bool (*nccl_built)();
  std::shared_ptr<ep::NcclTransport> (*make_nccl_transport)(ep::NcclOptions);
};

// libmoert_mpi: the MPI transport.
struct MpiTable {
  int abi;
  const char* version;
  bool (*ensure_initialized)();
  bool (*active)();
  int (*world_rank)();
  int (*world_size)();
  std::shared_ptr<ep::Transport> (*make_transport)(ep::MpiOptions);
  void (*abort_job)(int code);
};

// The files (SONAME) and their entry points.
constexpr const char* kCudaEntry = "moert_cuda_provider_table";
constexpr const char* kMpiEntry = "moert_mpi_provider_table";

// The table of provider `file` (opened by provider_entry), or Error(kUnsupported) when its entry is missing
// or the table is from another moert build.
template <class Table>
const Table& open_table(const std::string& file, const char* entry, const std::string& what,
                        bool global = false) {
  auto fn = reinterpret_cast<const Table* (*)()>(provider_entry(file, entry, what, global));
  const Table* t = fn();
  if (!t || t->abi != kAbi || !t->version || std::strcmp(t->version, MOERT_PROVIDER_VERSION) != 0)
    fail(ErrorCode::kUnsupported, what + ": " + file + " is from another moert build (" +
                                      (t && t->version ? t->version : "no table") + " table " +
                                      std::to_string(t ? t->abi : 0) + "; this is " + MOERT_PROVIDER_VERSION +
                                      " table " + std::to_string(kAbi) + ")");
  return *t;
}

}  // namespace moert::provider
