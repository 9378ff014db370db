// Non-finite logits (NaN/Inf from overflowing activations or weights that slipped past the load check)
// must end a request with an error, never sample a garbage token or stop with empty text and success.
#pragma once
#include <cstdint>

namespace moert {

// The index of the first NaN or Inf in x[0..n), or -1.
int64_t first_non_finite(const float* x, int64_t n);

}  // namespace moert
