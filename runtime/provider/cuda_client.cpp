// libmoert's side of the CUDA provider: the functions of cuda_backend.h and transport_nccl.h, forwarded to
// libmoert_cuda, which is opened on first use (provider_loader.h). Without it the device "cuda" and the NCCL
// transport are Error(kUnsupported) naming the file and the loader's reason; the queries answer "none".
#include "provider/provider_abi.h"
#include "util/error.h"

#ifndef MOERT_CUDA_PROVIDER_FILE
#error "MOERT_CUDA_PROVIDER_FILE (the provider's SONAME) must be defined by the build"
#endif

namespace moert {
namespace {

const provider::CudaTable& cuda_table(const std::string& what) {
  return provider::open_table<provider::CudaTable>(MOERT_CUDA_PROVIDER_FILE, provider::kCudaEntry, what);
}

// For the queries: the table, or null when the provider cannot be loaded.
const provider::CudaTable* cuda_table_or_null() {
  try {
    return &cuda_table("CUDA");
  } catch (const Error&) {
    return nullptr;
  }
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  return cuda_table("device \"cuda\"").make_backend(device_index);
}

int cuda_device_count() {
  const provider::CudaTable* t = cuda_table_or_null();
  return t ? t->device_count() : 0;
}

void cuda_synchronize(Backend& backend) {
  // Only a CUDA backend has work queued, and it exists only when the provider was loaded.
  if (backend.device() != DeviceKind::kCpu)
    if (const provider::CudaTable* t = cuda_table_or_null()) t->synchronize(backend);
}

CudaGemmStats cuda_gemm_stats(const Backend& backend) {
  if (backend.device() == DeviceKind::kCpu) return {};
  const provider::CudaTable* t = cuda_table_or_null();
  return t ? t->gemm_stats(backend) : CudaGemmStats{};
}

namespace ep {

bool nccl_built() {
  const provider::CudaTable* t = cuda_table_or_null();
  return t && t->nccl_built();
}

std::shared_ptr<NcclTransport> make_nccl_transport(NcclOptions opts) {
  return cuda_table("ep_transport \"nccl\"").make_nccl_transport(std::move(opts));
}

}  // namespace ep
}  // namespace moert
