// moert.h must compile as C++ with every warning an error.
#include "moert/moert.h"
int moert_abi_header_cxx_check() {
  return MOERT_API_VERSION > 0 ? MOERT_OK : 1;
}
