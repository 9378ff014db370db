// The entry point of libmoert_mpi (provider_abi.h): the MPI transport of runtime/ep/transport_mpi.cpp.
#include "provider/provider_abi.h"

extern "C" __attribute__((visibility("default"))) const moert::provider::MpiTable*
moert_mpi_provider_table() {
  static const moert::provider::MpiTable table{
      moert::provider::kAbi,          MOERT_PROVIDER_VERSION,     &moert::ep::mpi_ensure_initialized,
      &moert::ep::mpi_active,         &moert::ep::mpi_world_rank, &moert::ep::mpi_world_size,
      &moert::ep::make_mpi_transport, &moert::ep::mpi_abort_job};
  return &table;
}
