// libFuzzer target: parse_safetensors on arbitrary bytes must never crash, hang or read out of bounds;
// the only failure it may report is moert::Error(kFormat). What it accepts must be self-consistent: every
// tensor's bytes lie inside the image and match dtype x shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <vector>

#include "util/error.h"
#include "weights/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into an exactly-sized heap buffer so ASan sees any read past the end.
  std::vector<uint8_t> buf(data, data + size);
  const uint8_t* begin = buf.data();
  try {
    auto tensors = moert::parse_safetensors(begin, buf.size(), "fuzz.safetensors");
    for (const auto& [name, t] : tensors) {
      if (t.nbytes > 0 && (t.data < begin || t.data + t.nbytes > begin + buf.size())) std::abort();
      if (static_cast<uint64_t>(t.numel()) * moert::dtype_size(t.dtype) != t.nbytes) std::abort();
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
      (void)sink;
    }
  } catch (const moert::Error& e) {
    if (e.code() != moert::ErrorCode::kFormat) std::abort();
  }
  // Any other exception escapes and libFuzzer reports it as a crash.
  return 0;
}
