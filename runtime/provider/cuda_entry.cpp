// The entry point of libmoert_cuda (provider_abi.h): the CUDA backend and the NCCL transport, linked here
// from runtime/backend/cuda and runtime/ep/transport_nccl.cpp.
#include "provider/provider_abi.h"

extern "C" __attribute__((visibility("default"))) const moert::provider::CudaTable*
moert_cuda_provider_table() {
  static const moert::provider::CudaTable table{moert::provider::kAbi,     MOERT_PROVIDER_VERSION,
                                                &moert::make_cuda_backend, &moert::cuda_device_count,
                                                &moert::cuda_synchronize,  &moert::cuda_gemm_stats,
                                                &moert::ep::nccl_built,    &moert::ep::make_nccl_transport};
  return &table;
}
