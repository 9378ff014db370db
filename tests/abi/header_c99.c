/* moert.h must compile as strict C99 with every warning an error. */
#include "moert/moert.h"
int moert_abi_header_c99_check(void) {
  return MOERT_API_VERSION > 0 ? MOERT_OK : 1;
}
