// Command-line parsing for the moert CLI: each command declares its options (long name, short aliases,
// whether it takes a value); anything else is an error naming it, followed by that command's usage.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cli {

struct Opt {
  Opt(std::string n, bool value = true, std::vector<std::string> a = {})
      : name(std::move(n)), takes_value(value), aliases(std::move(a)) {}
  std::string name;                  // long name without "--" ("temperature")
  bool takes_value;                  // false: a flag ("--quiet")
  std::vector<std::string> aliases;  // other spellings as typed ("--temp", "-t")
};

struct Command {
  std::string name;   // "run"
  std::string usage;  // printed after an argument error and for --help / -h
  std::vector<Opt> opts;
};

class Args {
 public:
  // Parses argv[first..]; exits with status 2 (message + usage on stderr) on an unknown option, a
  // missing value or a stray argument, and with status 0 (usage on stdout) on --help / -h.
  Args(int argc, char** argv, int first, const Command& cmd);
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  // The last value given (options may repeat; the last one wins, as in llama.cpp).
  std::string get(const std::string& key, const std::string& dflt = "") const;
  // Every value given, in order (for repeatable options such as --stop).
  std::vector<std::string> get_all(const std::string& key) const;
  std::string require(const std::string& key) const;  // exits with a message when missing
  // Numbers: a value that does not parse whole, or overflows, is an error naming the option (never an
  // exception); the C API then checks the range.
  long long get_int(const std::string& key, long long dflt) const;
  double get_double(const std::string& key, double dflt) const;

 private:
  const Command& cmd_;
  std::map<std::string, std::vector<std::string>> values_;
};

// The progress callback of the C API's long writes (moert_checkpoint_*): "<command>: NN% <stage>" on stderr
// unless quiet. `progress` is a Progress.
struct Progress {
  const char* command;
  bool quiet;
};
int32_t print_progress(void* progress, double fraction, const char* stage);

[[noreturn]] void die(const std::string& message);
// Exits with moert_last_error() when status is not MOERT_OK.
void check(int status, const char* what);
std::string default_model_dir();
// DeepSeek-V3's tokenizer, installed with the program (share/moert/tokenizers/deepseek-v3).
std::string v3_tokenizer_dir();
// moert-serve beside the running executable (`moert serve` runs it).
std::string serve_program();
bool isatty_stdin();

}  // namespace cli
