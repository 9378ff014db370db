// libmoert's side of the MPI provider: the functions of transport_mpi.h, forwarded to libmoert_mpi, which
// is opened on first use with RTLD_GLOBAL (Open MPI's own plugins resolve symbols from libmpi). Without it
// the transport is Error(kUnsupported) naming the file and the loader's reason; the queries answer "no".
#include <cstdlib>

#include "provider/provider_abi.h"
#include "util/error.h"

#ifndef MOERT_MPI_PROVIDER_FILE
#error "MOERT_MPI_PROVIDER_FILE (the provider's SONAME) must be defined by the build"
#endif

namespace moert::ep {
namespace {

const provider::MpiTable& mpi_table(const std::string& what = "the MPI transport") {
  return provider::open_table<provider::MpiTable>(MOERT_MPI_PROVIDER_FILE, provider::kMpiEntry, what,
                                                  /*global=*/true);
}

const provider::MpiTable* mpi_table_or_null() {
  try {
    return &mpi_table();
  } catch (const Error&) {
    return nullptr;
  }
}

}  // namespace

bool mpi_built() {
  return mpi_table_or_null() != nullptr;
}
bool mpi_ensure_initialized() {
  return mpi_table().ensure_initialized();
}
bool mpi_active() {
  const provider::MpiTable* t = mpi_table_or_null();
  return t && t->active();
}
int mpi_world_rank() {
  return mpi_table().world_rank();
}
int mpi_world_size() {
  return mpi_table().world_size();
}
std::shared_ptr<Transport> make_mpi_transport(MpiOptions opts) {
  return mpi_table().make_transport(opts);
}

void mpi_abort_job(int code) {
  if (const provider::MpiTable* t = mpi_table_or_null()) t->abort_job(code);
  std::_Exit(code);
}

}  // namespace moert::ep
