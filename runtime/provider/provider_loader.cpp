#include "provider/provider_loader.h"

#include <dlfcn.h>

#include <map>
#include <mutex>
#include <vector>

#include "util/error.h"

namespace moert {

std::string provider_directory() {
  Dl_info info{};
  // Any function of this library names the file it came from.
  if (dladdr(reinterpret_cast<void*>(&provider_directory), &info) == 0 || !info.dli_fname) return {};
  std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

void* provider_entry(const std::string& file, const char* symbol, const std::string& what, bool global) {
  static std::mutex mu;
  static std::map<std::string, void*> opened;  // file -> handle (never dlclosed)
  std::lock_guard<std::mutex> lock(mu);
  void* handle = nullptr;
  if (auto it = opened.find(file); it != opened.end()) handle = it->second;
  std::string reasons;
  if (!handle) {
    std::vector<std::string> candidates;
    if (const std::string dir = provider_directory(); !dir.empty()) candidates.push_back(dir + "/" + file);
    candidates.push_back(file);  // LD_LIBRARY_PATH, the rpath, ld.so.cache
    const int flags = RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL);
    for (const std::string& c : candidates) {
      dlerror();
      handle = dlopen(c.c_str(), flags);
      if (handle) break;
      const char* d = dlerror();
      std::string e = d ? d : "not found";
      if (e.rfind(c, 0) != 0) e = c + ": " + e;  // a missing dependency's message does not name the provider
      reasons += (reasons.empty() ? "" : "; ") + e;
    }
    if (!handle)
      fail(ErrorCode::kUnsupported,
           what + " needs the provider library " + file + ", which could not be loaded (" + reasons + ")");
    opened[file] = handle;
  }
  dlerror();
  void* entry = dlsym(handle, symbol);
  if (!entry) {
    const char* e = dlerror();
    fail(ErrorCode::kUnsupported,
         what + ": " + file + " has no entry " + symbol + " (" + (e ? e : "null") + ")");
  }
  return entry;
}

}  // namespace moert
