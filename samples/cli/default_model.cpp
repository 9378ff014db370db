// Where `moert` finds its default model when --model is not given: $MOERT_MODEL (or the older
// $MOERT_DEFAULT_MODEL), else the model installed with the program, at MOERT_MODEL_RELPATH from the folder
// of the executable (share/moert/models/moert-tiny-coder next to bin/). The build tree mirrors that layout
// (samples/share next to samples/cli), so the program behaves the same built and installed, and no
// build-tree path is compiled in.
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>

#include "args.h"

#ifndef MOERT_MODEL_RELPATH
#error "MOERT_MODEL_RELPATH (the default model relative to the executable's folder) must be defined"
#endif

namespace cli {

namespace {

// `rel` from the folder of the running executable.
std::string beside_executable(const char* rel) {
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return rel;  // relative to the working directory: the best left
  std::string path(exe, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + rel;
}

}  // namespace

std::string default_model_dir() {
  for (const char* var : {"MOERT_MODEL", "MOERT_DEFAULT_MODEL"})
    if (const char* env = std::getenv(var); env && *env) return env;
  return beside_executable(MOERT_MODEL_RELPATH);
}

std::string v3_tokenizer_dir() {
  return beside_executable(MOERT_V3_TOKENIZER_RELPATH);
}

std::string serve_program() {
  return beside_executable("moert-serve");
}

}  // namespace cli
