// The bench programs' command lines: every flag known, every valued flag followed by a value (a bad command
// line prints the usage and exits 2; --help prints it and exits 0), values read by name.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

namespace moert::bench {

inline const char* g_program = "bench";  // for messages; set by check_args

inline void check_args(int argc, char** argv, const char* program, const char* usage,
                       const std::set<std::string>& valued, const std::set<std::string>& switches) {
  g_program = program;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (switches.count(a)) continue;
    if (valued.count(a)) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n%s", program, a.c_str(), usage);
        std::exit(2);
      }
      ++i;
      continue;
    }
    std::fprintf(stderr, "%s: unknown argument '%s'\n%s", program, a.c_str(), usage);
    std::exit(2);
  }
}

inline std::string arg(int argc, char** argv, const char* key, const std::string& dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], key)) return argv[i + 1];
  return dflt;
}

inline bool flag(int argc, char** argv, const char* key) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], key)) return true;
  return false;
}

inline int int_arg(int argc, char** argv, const char* key, int dflt) {
  const std::string v = arg(argc, argv, key, std::to_string(dflt));
  char* end = nullptr;
  const long r = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || r < 0) {
    std::fprintf(stderr, "%s: %s wants a non-negative integer, got '%s'\n", g_program, key, v.c_str());
    std::exit(2);
  }
  return static_cast<int>(r);
}

}  // namespace moert::bench
