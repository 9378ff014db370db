// The load-time check that weights are numbers: a NaN or Inf in a BF16/F16/F32 tensor, a NaN byte
// (0x7F/0xFF) in an FP8 e4m3 tensor, or a block scale (`*_scale_inv`) that is not finite and positive
// would otherwise turn into NaN logits, i.e. silent garbage. The scan reads every mapped byte once,
// branch-free over blocks (the compiler vectorises the loops), spread over threads.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "weights/weight_store.h"

namespace moert {

// The index of the first bad element of `n` elements at `data` (no alignment needed), or -1. `scale`:
// F32 values must also be > 0.
int64_t first_bad_element(const uint8_t* data, int64_t n, DType dtype, bool scale);

// Scans every tensor of the store with `threads` threads (0 = all cores). Error(kFormat) naming the file,
// the tensor and the first bad index (of the first bad tensor by name when several are).
void scan_weights(const WeightStore& store, int threads);

}  // namespace moert
