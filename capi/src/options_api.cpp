// moert_options_*: the exported functions over options.cpp.
#include "guard.h"
#include "options.h"

using moert::capi::guarded;
using moert::capi::require;

extern "C" {

MOERT_API moert_status moert_options_create(moert_options** out) {
  return guarded([&] {
    require(out, "out");
    *out = new moert_options();
  });
}

MOERT_API void moert_options_free(moert_options* options) {
  delete options;
}

MOERT_API moert_status moert_options_set_int(moert_options* o, const char* key, int64_t value) {
  return guarded([&] { moert::capi::options_set(*require(o, "options"), require(key, "key"), value); });
}
MOERT_API moert_status moert_options_set_float(moert_options* o, const char* key, double value) {
  return guarded([&] { moert::capi::options_set(*require(o, "options"), require(key, "key"), value); });
}
MOERT_API moert_status moert_options_set_string(moert_options* o, const char* key, const char* value) {
  return guarded([&] {
    moert::capi::options_set(*require(o, "options"), require(key, "key"),
                             std::string(require(value, "value")));
  });
}

MOERT_API moert_status moert_options_add_string(moert_options* o, const char* key, const char* value) {
  return guarded([&] {
    moert::capi::options_add(*require(o, "options"), require(key, "key"),
                             std::string(require(value, "value")));
  });
}
MOERT_API moert_status moert_options_add_int(moert_options* o, const char* key, int64_t value) {
  return guarded([&] { moert::capi::options_add(*require(o, "options"), require(key, "key"), value); });
}

}  // extern "C"
