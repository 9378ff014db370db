#include "args.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "moert/moert.h"

namespace cli {

Args::Args(int argc, char** argv, int first, const std::vector<std::string>& flags) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) die("unexpected argument '" + a + "'");
    std::string key = a.substr(2), value;
    auto eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (std::find(flags.begin(), flags.end(), key) != flags.end()) {
      value = "1";
    } else {
      if (i + 1 >= argc) die("option --" + key + " needs a value");
      value = argv[++i];
    }
    values_[key] = value;
  }
}

std::string Args::get(const std::string& key, const std::string& dflt) const {
  auto it = values_.find(key);
  return it == values_.end() ? dflt : it->second;
}

std::string Args::require(const std::string& key) const {
  if (!has(key)) die("missing required option --" + key);
  return get(key);
}

long long Args::get_int(const std::string& key, long long dflt) const {
  if (!has(key)) return dflt;
  const std::string v = get(key);
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end) die("option --" + key + " needs an integer, got '" + v + "'");
  return x;
}

void die(const std::string& message) {
  std::fprintf(stderr, "moert: %s\n", message.c_str());
  std::exit(1);
}

void check(int status, const char* what) {
  if (status != MOERT_OK) die(std::string(what) + ": " + moert_last_error() + " (" + moert_status_name(status) + ")");
}

}  // namespace cli

#include <unistd.h>

namespace cli {
bool isatty_stdin() { return ::isatty(0) != 0; }
}  // namespace cli
