#include "args.h"

#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "moert/moert.h"

namespace cli {
namespace {

const Opt* find_opt(const Command& cmd, const std::string& typed) {
  for (const Opt& o : cmd.opts) {
    if (typed == "--" + o.name) return &o;
    for (const std::string& a : o.aliases)
      if (typed == a) return &o;
  }
  return nullptr;
}

[[noreturn]] void usage_error(const Command& cmd, const std::string& message) {
  std::fprintf(stderr, "moert %s: %s\n\n%s", cmd.name.c_str(), message.c_str(), cmd.usage.c_str());
  std::exit(2);
}

}  // namespace

Args::Args(int argc, char** argv, int first, const Command& cmd) : cmd_(cmd) {
  for (int i = first; i < argc; ++i) {
    std::string typed = argv[i], value;
    if (typed == "--help" || typed == "-h") {
      std::fputs(cmd.usage.c_str(), stdout);
      std::exit(0);
    }
    if (typed.size() < 2 || typed[0] != '-') usage_error(cmd, "unexpected argument '" + typed + "'");
    const auto eq = typed.find('=');
    const bool inline_value = eq != std::string::npos && typed.rfind("--", 0) == 0;
    if (inline_value) {
      value = typed.substr(eq + 1);
      typed = typed.substr(0, eq);
    }
    const Opt* o = find_opt(cmd, typed);
    if (!o) usage_error(cmd, "unknown option '" + typed + "'");
    if (!o->takes_value) {
      if (inline_value) usage_error(cmd, "option " + typed + " takes no value");
      value = "1";
    } else if (!inline_value) {
      // A value may start with '-' (a negative number, "-" for stdin) but is never another known option.
      if (i + 1 >= argc || find_opt(cmd, argv[i + 1]) || std::string(argv[i + 1]) == "--help")
        usage_error(cmd, "option " + typed + " needs a value");
      value = argv[++i];
    }
    values_[o->name].push_back(value);
  }
}

std::string Args::get(const std::string& key, const std::string& dflt) const {
  auto it = values_.find(key);
  return it == values_.end() ? dflt : it->second.back();
}

std::vector<std::string> Args::get_all(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::require(const std::string& key) const {
  if (!has(key)) usage_error(cmd_, "missing required option --" + key);
  return get(key);
}

long long Args::get_int(const std::string& key, long long dflt) const {
  if (!has(key)) return dflt;
  const std::string v = get(key);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end) usage_error(cmd_, "option --" + key + " needs an integer, got '" + v + "'");
  if (errno == ERANGE) usage_error(cmd_, "option --" + key + " value '" + v + "' is out of range");
  return x;
}

double Args::get_double(const std::string& key, double dflt) const {
  if (!has(key)) return dflt;
  const std::string v = get(key);
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) usage_error(cmd_, "option --" + key + " needs a number, got '" + v + "'");
  // ERANGE also flags an underflow to a denormal or zero ("1e-999"), which is harmless here.
  if (!std::isfinite(x) || (errno == ERANGE && std::fabs(x) > 1.0))
    usage_error(cmd_, "option --" + key + " value '" + v + "' is out of range");
  return x;
}

int32_t print_progress(void* progress, double fraction, const char* stage) {
  const Progress& p = *static_cast<const Progress*>(progress);
  if (!p.quiet) std::fprintf(stderr, "%s: %3.0f%% %s\n", p.command, fraction * 100, stage);
  return 0;
}

void die(const std::string& message) {
  std::fprintf(stderr, "moert: %s\n", message.c_str());
  std::exit(1);
}

void check(int status, const char* what) {
  if (status != MOERT_OK)
    die(std::string(what) + ": " + moert_last_error() + " (" + moert_status_name(status) + ")");
}

bool isatty_stdin() {
  return ::isatty(0) != 0;
}

}  // namespace cli
