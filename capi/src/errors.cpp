#include "guard.h"

namespace moert::capi {
namespace {
thread_local std::string g_last_error;
}
void set_last_error(const std::string& message) {
  g_last_error = message;
}
void clear_last_error() {
  g_last_error.clear();
}
const std::string& last_error() {
  return g_last_error;
}
}  // namespace moert::capi

extern "C" {

MOERT_API int32_t moert_api_version(void) {
  return MOERT_API_VERSION;
}

MOERT_API const char* moert_version_string(void) {
  return MOERT_VERSION_STRING;
}

MOERT_API const char* moert_last_error(void) {
  return moert::capi::last_error().c_str();
}

MOERT_API const char* moert_status_name(moert_status s) {
  switch (s) {
    case MOERT_OK:
      return "MOERT_OK";
    case MOERT_ERR_INVALID_ARGUMENT:
      return "MOERT_ERR_INVALID_ARGUMENT";
    case MOERT_ERR_IO:
      return "MOERT_ERR_IO";
    case MOERT_ERR_FORMAT:
      return "MOERT_ERR_FORMAT";
    case MOERT_ERR_UNSUPPORTED:
      return "MOERT_ERR_UNSUPPORTED";
    case MOERT_ERR_OUT_OF_MEMORY:
      return "MOERT_ERR_OUT_OF_MEMORY";
    case MOERT_ERR_DEVICE:
      return "MOERT_ERR_DEVICE";
    case MOERT_ERR_CANCELLED:
      return "MOERT_ERR_CANCELLED";
    case MOERT_ERR_INTERNAL:
      return "MOERT_ERR_INTERNAL";
    case MOERT_ERR_TIMEOUT:
      return "MOERT_ERR_TIMEOUT";
    default:
      return "MOERT_ERR_UNKNOWN";
  }
}

}  // extern "C"
