// Minimal command-line parsing for the moert CLI: --key value pairs and --flags.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace cli {

class Args {
 public:
  // flags: options that take no value.
  Args(int argc, char** argv, int first, const std::vector<std::string>& flags);
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string get(const std::string& key, const std::string& dflt = "") const;
  std::string require(const std::string& key) const;  // exits with a message when missing
  long long get_int(const std::string& key, long long dflt) const;

 private:
  std::map<std::string, std::string> values_;
};

[[noreturn]] void die(const std::string& message);
// Exits with moert_last_error() when status is not MOERT_OK.
void check(int status, const char* what);
std::string default_model_dir();

}  // namespace cli

namespace cli {
bool isatty_stdin();
}  // namespace cli
