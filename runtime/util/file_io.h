// Checkpoint and tokenizer files are opened through these, so a path that is not a regular file (a FIFO,
// a device, a directory) or that fails to resolve (a symlink loop, no permission) is Error(kIo) naming it,
// never a blocked open() or a std::filesystem exception.
#pragma once
#include <string>

namespace moert {

// True when `path` exists (following symlinks), false when it does not (ENOENT, ENOTDIR); Error(kIo)
// naming the path for any other failure (ELOOP, EACCES, ...).
bool path_exists(const std::string& path);

// Opens `path` for reading without blocking (O_NONBLOCK: a FIFO with no writer would otherwise hang) and
// returns its descriptor once fstat says it is a regular file; else Error(kIo) naming the path and what it
// is. The caller closes the descriptor. *size receives the file size.
int open_regular_file(const std::string& path, size_t* size);

// The whole content of a regular file (open_regular_file's checks), or Error(kIo).
std::string read_regular_file(const std::string& path);

}  // namespace moert
