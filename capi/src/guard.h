// The C boundary: every exported function runs its body inside guarded(), which turns any exception into
// a moert_status and this thread's last-error message. No exception crosses into the host.
#pragma once
#include <filesystem>
#include <ios>
#include <new>
#include <string>

#include "moert/moert.h"
#include "util/error.h"

namespace moert::capi {

void set_last_error(const std::string& message);
void clear_last_error();
const std::string& last_error();

template <typename F>
moert_status guarded(F&& body) noexcept {
  try {
    clear_last_error();
    body();
    return MOERT_OK;
  } catch (const Error& e) {
    set_last_error(e.what());
    return static_cast<moert_status>(e.code());
  } catch (const std::bad_alloc&) {
    set_last_error("out of memory");
    return MOERT_ERR_OUT_OF_MEMORY;
  } catch (const std::filesystem::filesystem_error& e) {
    // A file-system failure that escaped moert's own checks (symlink loop, no permission) is I/O, no bug.
    set_last_error(e.what());
    return MOERT_ERR_IO;
  } catch (const std::ios_base::failure& e) {
    set_last_error(e.what());
    return MOERT_ERR_IO;
  } catch (const std::exception& e) {
    set_last_error(std::string("internal error: ") + e.what());
    return MOERT_ERR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return MOERT_ERR_INTERNAL;
  }
}

// Throws Error(kInvalidArgument) naming the parameter when p is NULL.
template <typename T>
T* require(T* p, const char* what) {
  if (!p) fail(ErrorCode::kInvalidArgument, std::string(what) + " must not be NULL");
  return p;
}

}  // namespace moert::capi
