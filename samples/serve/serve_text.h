// Text out of moert.h's required-size protocol: a call writes a NUL-terminated string into buf[cap] when
// it fits and says the size it needs either way. One call into a small buffer serves most texts (a token,
// a stream's piece); a longer one gets a second call into a buffer of that size.
#pragma once
#include <cstddef>
#include <optional>
#include <string>

#include "moert/moert.h"

namespace serve {

// f(char* buf, size_t cap, size_t* needed) -> moert_status. nullopt when it fails for another reason
// than the size (moert_last_error() says why).
template <typename F>
std::optional<std::string> read_text(F&& f) {
  char small[256];
  size_t need = 0;
  if (f(small, sizeof small, &need) == MOERT_OK) return std::string(small, need ? need - 1 : 0);
  if (need <= sizeof small) return std::nullopt;
  std::string out(need, '\0');
  if (f(out.data(), out.size(), &need) != MOERT_OK) return std::nullopt;
  out.resize(need ? need - 1 : 0);
  return out;
}

}  // namespace serve
