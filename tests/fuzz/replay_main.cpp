// A stand-in for libFuzzer where it is not available (g++ builds, as CI uses): runs LLVMFuzzerTestOneInput
// over every seed file, then over random mutations of the seeds until the time budget is spent. No coverage
// feedback, but the same harness, the same invariants (a crash, an abort or an escaping exception fails the
// ctest run), and a reproducer: the input being run when a fatal signal arrives is written to
// <name>.crash in the working directory.
//
//   fuzz_replay_<target> [--seconds S] [--seed N] [--max-len BYTES] <corpus dir or file>...
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

// The input in flight, for the signal handler.
const std::string* g_current = nullptr;
char g_crash_path[4096] = "fuzz-replay.crash";

extern "C" void on_fatal_signal(int sig) {
  if (g_current) {
    int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t w = ::write(fd, g_current->data(), g_current->size());
      (void)w;
      ::close(fd);
    }
    const char msg[] = "fuzz replay: fatal signal; input written to the .crash file\n";
    ssize_t w = ::write(2, msg, sizeof(msg) - 1);
    (void)w;
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void run_one(const std::string& input) {
  g_current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_current = nullptr;
}

// Tokens that tend to matter to JSON-headed formats.
const char* const kDict[] = {
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    " ",
    "null",
    "true",
    "false",
    "-1",
    "0",
    "1",
    "2",
    "128",
    "1e300",
    "-0",
    "0.5",
    "1.0",
    "4294967424",
    "9223372036854775807",
    "18446744073709551615",
    "\"\\u0000\"",
    "\"\xff\"",
    "\"dtype\"",
    "\"shape\"",
    "\"data_offsets\"",
    "\"F32\"",
    "\"BF16\"",
    "\"F8_E4M3\"",
    "\"I64\"",
    "\"__metadata__\"",
    "\"model_type\"",
    "\"deepseek_v3\"",
    "\"n_group\"",
    "\"topk_group\"",
    "\"n_routed_experts\"",
    "\"rope_scaling\"",
    "\"yarn\"",
    "\"factor\"",
    "\"quantization_config\"",
    "\"q_lora_rank\"",
};

class Mutator {
 public:
  explicit Mutator(uint64_t seed, size_t max_len) : rng_(seed), max_len_(max_len) {}

  std::string mutate(std::string s, const std::vector<std::string>& corpus) {
    const int rounds = 1 + static_cast<int>(rng_() % 4);
    for (int r = 0; r < rounds; ++r) {
      switch (rng_() % 10) {
        case 0:  // flip a bit
          if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng_() % 8));
          break;
        case 1:  // set a byte
          if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng_());
          break;
        case 2: {  // erase a span
          if (s.empty()) break;
          size_t p = pick(s.size()), n = 1 + pick(std::min<size_t>(16, s.size() - p));
          s.erase(p, n);
          break;
        }
        case 3: {  // insert random bytes
          std::string ins(1 + pick(8), '\0');
          for (auto& c : ins) c = static_cast<char>(rng_());
          s.insert(pick(s.size() + 1), ins);
          break;
        }
        case 4:
        case 5:  // insert or overwrite with a dictionary token
        {
          std::string tok = kDict[pick(sizeof(kDict) / sizeof(kDict[0]))];
          size_t p = pick(s.size() + 1);
          if (rng_() % 2 || p + tok.size() > s.size())
            s.insert(p, tok);
          else
            s.replace(p, tok.size(), tok);
          break;
        }
        case 6:  // truncate
          if (!s.empty()) s.resize(pick(s.size()));
          break;
        case 7: {  // duplicate a span
          if (s.empty()) break;
          size_t p = pick(s.size()), n = 1 + pick(std::min<size_t>(64, s.size() - p));
          s.insert(pick(s.size() + 1), s.substr(p, n));
          break;
        }
        case 8: {  // splice with another corpus entry
          if (corpus.empty()) break;
          const std::string& o = corpus[pick(corpus.size())];
          if (o.empty()) break;
          size_t a = pick(s.size() + 1), b = pick(o.size());
          s = s.substr(0, a) + o.substr(b);
          break;
        }
        case 9: {  // rewrite a little-endian u64 (the safetensors header length) near a plausible value
          if (s.size() < 8) break;
          uint64_t v = 0;
          for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[i]);
          switch (rng_() % 4) {
            case 0:
              v = s.size() - 8 - pick(4);
              break;
            case 1:
              v += pick(16);
              break;
            case 2:
              v -= pick(16);
              break;
            default:
              v = rng_();
              break;
          }
          for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
          break;
        }
      }
    }
    if (s.size() > max_len_) s.resize(max_len_);
    return s;
  }

 private:
  size_t pick(size_t n) { return n ? static_cast<size_t>(rng_() % n) : 0; }
  std::mt19937_64 rng_;
  size_t max_len_;
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3.0;
  uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  size_t max_len = 1 << 16;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--seed" && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--max-len" && i + 1 < argc)
      max_len = std::strtoull(argv[++i], nullptr, 10);
    else
      inputs.emplace_back(a);
  }
  std::string name = fs::path(argv[0]).filename().string();
  std::snprintf(g_crash_path, sizeof(g_crash_path), "%s.crash", name.c_str());
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, on_fatal_signal);

  std::vector<std::string> corpus;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) corpus.push_back(read_file(f));
    } else if (fs::is_regular_file(in, ec)) {
      corpus.push_back(read_file(in));
    } else {
      std::fprintf(stderr, "%s: no corpus at %s (running on generated inputs only)\n", name.c_str(),
                   in.c_str());
    }
  }

  // Every seed as it is, plus the empty input.
  run_one(std::string());
  for (const auto& c : corpus) run_one(c);

  Mutator mut(seed, max_len);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t runs = 0;
  std::mt19937_64 pick(seed ^ 0x9e3779b97f4a7c15ull);
  while (std::chrono::steady_clock::now() < deadline) {
    for (int k = 0; k < 16; ++k) {
      std::string base = corpus.empty() ? std::string() : corpus[pick() % corpus.size()];
      run_one(mut.mutate(std::move(base), corpus));
      ++runs;
    }
  }
  std::printf("%s: %zu seeds, %llu mutated inputs in %.1f s (seed %llu): no crash\n", name.c_str(),
              corpus.size(), static_cast<unsigned long long>(runs), seconds,
              static_cast<unsigned long long>(seed));
  return 0;
}
