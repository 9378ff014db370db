// Optional parts of moert (the CUDA backend with cuBLASLt and NCCL, the MPI transport) live in provider
// libraries that libmoert opens with dlopen when they are first asked for, as ONNX Runtime's execution
// providers and ggml's backends do: libmoert itself then needs only the C/C++ runtime and what the CPU path
// needs, and starts on machines without CUDA or MPI.
//
// A provider exports one extern "C" function returning its table (provider_abi.h). The file is looked for
// in the directory libmoert was loaded from, then on the loader's default search path.
#pragma once
#include <string>

namespace moert {

// The entry `symbol` of provider library `file` (e.g. "libmoert_cuda.so.0"), opened once per process and
// never closed (its atexit handlers and thread-locals stay valid). `global`: RTLD_GLOBAL, for libraries such
// as Open MPI whose own plugins resolve symbols from it. Throws Error(kUnsupported) naming `what` (the
// feature asked for), every file looked for and the loader's reason.
void* provider_entry(const std::string& file, const char* symbol, const std::string& what,
                     bool global = false);

// The directory holding the library this code was linked into (libmoert.so, or a test executable).
std::string provider_directory();

}  // namespace moert
