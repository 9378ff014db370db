// A provider library as another moert build would make it (tests/runtime/provider_test.cpp): the CUDA entry
// point with a table of a different version and no functions.
#include "provider/provider_abi.h"

extern "C" __attribute__((visibility("default"))) const moert::provider::CudaTable*
moert_cuda_provider_table() {
  static const moert::provider::CudaTable table{
      moert::provider::kAbi, MOERT_PROVIDER_VERSION, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  return &table;
}
