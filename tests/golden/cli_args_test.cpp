// The moert program's argument handling and the behaviour outside users meet first: unknown or
// incomplete options are errors naming them with the command's usage, numbers are checked (never an
// abort), every --stop is kept, llama.cpp's spellings work, sampled runs report their seed, the
// checkpoint's generation_config.json applies, make-model writes V3's shape with a tokenizer, and Ctrl-C
// in chat cancels only the reply.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "../fault/st_image.h"

namespace {

const std::string kCli = MOERT_CLI;
const std::string kModel = MOERT_DEFAULT_MODEL_DIR;

// A private path under the temp dir: other checkouts' test runs may share /tmp and run these same tests.
std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/moert_cli_args_" + std::to_string(getpid()) + "_" + name;
}

struct Result {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `moert ARGS` through the shell with `input` on stdin.
Result moert(const std::string& args, const std::string& input = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string base = temp_path(info->name());
  std::ofstream(base + ".in", std::ios::binary) << input;
  FILE* p = popen((kCli + " " + args + " < " + base + ".in 2> " + base + ".err").c_str(), "r");
  Result r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
  r.err = slurp(base + ".err");
  return r;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

const char* const kCommands[] = {"run",      "chat",       "info",          "logits",
                                 "tokenize", "detokenize", "chat-template", "make-model"};

TEST(CliArgs, UnknownOptionIsAnErrorNamingItWithUsage) {
  for (const char* cmd : kCommands) {
    const Result r = moert(std::string(cmd) + " --temp2 0.8");
    EXPECT_EQ(r.status, 2) << cmd << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "unknown option '--temp2'")) << r.err;
    EXPECT_TRUE(contains(r.err, std::string("usage: moert ") + cmd)) << r.err;
    EXPECT_EQ(r.out, "") << cmd;
  }
  // The report's case: a misspelt option used to run greedy without a word.
  Result r = moert("run -p hi --tmp 0.8");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown option '--tmp'")) << r.err;
  r = moert("run -p hi stray");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unexpected argument 'stray'")) << r.err;
  r = moert("run -p hi --quiet=1");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--quiet takes no value")) << r.err;
}

TEST(CliArgs, OptionWithoutItsValueIsAnError) {
  Result r = moert("run -p hi --temperature");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "option --temperature needs a value")) << r.err;
  EXPECT_TRUE(contains(r.err, "usage: moert run")) << r.err;
  // The next option is not taken as the value.
  r = moert("run --seed --quiet -p hi");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "option --seed needs a value")) << r.err;
  r = moert("logits --tokens 1,2 --out");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "option --out needs a value")) << r.err;
}

TEST(CliArgs, HelpPrintsTheCommandsUsage) {
  for (const char* cmd : kCommands)
    for (const char* flag : {"--help", "-h"}) {
      const Result r = moert(std::string(cmd) + " " + flag);
      EXPECT_EQ(r.status, 0) << cmd << " " << flag;
      EXPECT_TRUE(contains(r.out, std::string("usage: moert ") + cmd)) << r.out;
    }
  const Result r = moert("run --help");
  for (const char* opt : {"--temp", "--repeat-penalty", "--presence-penalty", "-m, --model",
                          "-n, --max-tokens", "--seed", "--stop", "--no-weight-check"})
    EXPECT_TRUE(contains(r.out, opt)) << opt;
  EXPECT_EQ(moert("--help").status, 0);
  EXPECT_EQ(moert("").status, 2);
  EXPECT_EQ(moert("frobnicate").status, 2);
}

TEST(CliArgs, Version) {
  for (const char* v : {"--version", "version"}) {
    const Result r = moert(v);
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(^moert \d+\.\d+\.\d+ \(API \d+\)\n$)"))) << r.out;
  }
}

// Bad numbers are errors naming the option (they used to throw std::invalid_argument: abort, exit 134).
TEST(CliArgs, BadNumbersAreErrorsNotAborts) {
  const std::pair<const char*, const char*> cases[] = {
      {"--temperature abc", "--temperature needs a number, got 'abc'"},
      {"--temperature 1e999", "--temperature value '1e999' is out of range"},
      {"--top-p 0.5x", "--top-p needs a number"},
      {"--min-p nan", "--min-p value 'nan' is out of range"},
      {"--repeat-penalty inf", "--repetition-penalty value 'inf' is out of range"},
      {"--seed 99999999999999999999999", "--seed value '99999999999999999999999' is out of range"},
      {"-n 12abc", "--max-tokens needs an integer, got '12abc'"},
      {"--top-k ''", "--top-k needs an integer, got ''"}};
  for (auto [args, want] : cases) {
    const Result r = moert(std::string("run -p hi --quiet ") + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_TRUE(contains(r.err, want)) << args << ": " << r.err;
  }
  // In-range parsing but out of the C API's range: the C API's message, exit 1.
  Result r = moert("run -p hi --quiet --temperature 500");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "option 'temperature' value 500")) << r.err;
  r = moert("run -p hi --quiet --seed -3");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "'seed'")) << r.err;
}

std::string greedy(const std::string& extra) {
  const Result r =
      moert("run --quiet --no-echo --ignore-eos --temperature 0 -p 'def fibonacci(n):' " + extra);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

TEST(CliArgs, LlamaCppSpellingsWork) {
  const std::string long_form =
      greedy("--max-tokens 12 --threads 1 --top-k 5 --top-p 0.9 --min-p 0.01 --seed 4");
  const Result r =
      moert("run --quiet --no-echo --ignore-eos -m " + kModel +
            " -p 'def fibonacci(n):' -n 12 -t 1 --temp 0 --repeat-penalty 1 --top-k 5 --top-p 0.9"
            " --min-p 0.01 --seed 4");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, long_form);
  EXPECT_EQ(moert("run --quiet --no-echo --ignore-eos -p 'def fibonacci(n):' -n 12 --temp 0 -s 4").out,
            long_form);
  EXPECT_EQ(moert("run --quiet --no-echo --ignore-eos -f - -n 12 --temp 0", "def fibonacci(n):").out,
            long_form);
}

// Every --stop counts, not only the last one given.
TEST(CliArgs, EveryStopIsKept) {
  const std::string full = greedy("-n 24");
  ASSERT_GT(full.size(), 20u);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string want = full.substr(0, full.find(stop)) + "\n";
  EXPECT_EQ(greedy("-n 24 --stop " + std::string("'") + stop + "' --stop ZZZ_NOT_THERE"), want);
  EXPECT_EQ(greedy("-n 24 --stop ZZZ_NOT_THERE --stop '" + stop + "'"), want);
}

TEST(CliArgs, PenaltyFlagsChangeTheOutput) {
  const std::string plain = greedy("-n 32");
  EXPECT_NE(greedy("-n 32 --repetition-penalty 2"), plain);
  EXPECT_NE(greedy("-n 32 --presence-penalty 5"), plain);
  EXPECT_EQ(greedy("-n 32 --repetition-penalty 1 --presence-penalty 0"), plain);
}

std::string reported_seed(const std::string& err) {
  std::smatch m;
  return std::regex_search(err, m, std::regex(R"(seed (\d+)\])")) ? m[1].str() : "";
}

// A sampled run without --seed draws a fresh seed and reports it; --seed with that value repeats the run.
TEST(CliArgs, SampledRunsReportTheirSeed) {
  const std::string args = "run --no-echo --ignore-eos -p 'def fibonacci(n):' -n 24 --temperature 1.0";
  const Result a = moert(args), b = moert(args);
  ASSERT_EQ(a.status, 0) << a.err;
  const std::string seed_a = reported_seed(a.err), seed_b = reported_seed(b.err);
  ASSERT_FALSE(seed_a.empty()) << a.err;
  EXPECT_NE(seed_a, seed_b);
  EXPECT_EQ(moert(args + " --seed " + seed_a).out, a.out);
  EXPECT_EQ(moert(args + " --seed " + seed_b).out, b.out);
  // Greedy reports no seed.
  EXPECT_EQ(reported_seed(moert("run -p hi -n 2 --temperature 0").err), "");
}

// The shipped model's generation_config.json (temperature 0.7, top_p 0.95) is the default sampling.
TEST(CliArgs, GenerationConfigIsTheDefault) {
  const auto cfg = nlohmann::json::parse(slurp(kModel + "/generation_config.json"));
  ASSERT_EQ(cfg["temperature"], 0.7);
  const std::string base = "run --quiet --no-echo --ignore-eos -p 'def fibonacci(n):' -n 32 --seed 11";
  const std::string by_default = moert(base).out;
  EXPECT_EQ(moert(base + " --temperature 0.7 --top-p 0.95").out, by_default);
  EXPECT_NE(moert(base + " --temperature 0").out, by_default);
  EXPECT_TRUE(contains(moert("run -p hi -n 2").err, "seed ")) << "the default run is not sampled";
}

TEST(CliArgs, DetokenizeUnknownIdIsAnError) {
  const Result r = moert("detokenize", "5,99999,7");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "token id 99999 at position 1")) << r.err;
  EXPECT_TRUE(contains(r.err, "MOERT_ERR_INVALID_ARGUMENT")) << r.err;
  EXPECT_EQ(moert("detokenize", "5,7").status, 0);
}

// With no shape flags but a small hidden size, make-model writes DeepSeek-V3's dimensions (the README's
// command relies on it), a tokenizer that fits, and a progress line per layer.
TEST(CliArgs, MakeModelDefaultsToDeepSeekV3WithATokenizer) {
  const std::string dir = temp_path("made_v3_shape");
  const Result r = moert("make-model --out " + dir + " --hidden 128 --layers 1");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "make-model:")) << r.err;
  EXPECT_TRUE(contains(r.err, "layer 1 of 1")) << r.err;
  EXPECT_TRUE(contains(r.out, "DeepSeek-V3's tokenizer")) << r.out;
  const auto made = nlohmann::json::parse(slurp(dir + "/config.json"));
  const auto v3 = nlohmann::json::parse(slurp(std::string(MOERT_TEST_DATA) + "/configs/deepseek-v3.json"));
  for (const char* k :
       {"vocab_size", "intermediate_size", "moe_intermediate_size", "n_shared_experts", "n_routed_experts",
        "num_experts_per_tok", "n_group", "topk_group", "q_lora_rank", "kv_lora_rank", "num_attention_heads",
        "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"})
    EXPECT_EQ(made[k], v3[k]) << k;
  EXPECT_EQ(slurp(dir + "/tokenizer.json"),
            slurp(std::string(MOERT_TEST_DATA) + "/tokenizer-deepseek-v3/tokenizer.json"));
  const Result run = moert("run --quiet -m " + dir + " -p hello -n 2 --temperature 0");
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "hello")) << run.out;
}

// A copy of the shipped model with one NaN in the final norm (references excluded).
std::string poisoned_model(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  moert_test::copy_checkpoint(kModel, dir);
  const auto index = nlohmann::json::parse(slurp((dir / "model.safetensors.index.json").string()));
  const std::string shard = index["weight_map"]["model.norm.weight"];
  moert_test::StTensors ts = moert_test::st_read(dir / shard);
  moert_test::st_find(ts, "model.norm.weight")->data.replace(2 * 9, 2, std::string("\xc0\x7f", 2));
  moert_test::write_bytes(dir / shard, moert_test::st_build(ts));
  return dir.string() + "|" + shard;
}

// Bad weights are an error naming the file, tensor and index; skipping the scan, the NaN logits end the
// run with an error instead of printing nothing with success.
TEST(CliArgs, BadWeightsAreErrorsNotGarbage) {
  const std::string both = poisoned_model("poisoned_model"), dir = both.substr(0, both.find('|')),
                    shard = both.substr(both.find('|') + 1);
  Result r = moert("run --quiet -m " + dir + " -p hi -n 4");
  EXPECT_EQ(r.status, 1);
  for (const std::string& want :
       {shard, std::string("model.norm.weight"), std::string("index 9"), std::string("MOERT_ERR_FORMAT")})
    EXPECT_TRUE(contains(r.err, want)) << want << ": " << r.err;
  r = moert("run --quiet --no-weight-check -m " + dir + " -p hi -n 4");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "generation failed: the model produced a non-finite logit")) << r.err;
}

// Special files where the checkpoint's files should be are errors at once (a FIFO used to hang the load).
TEST(CliArgs, SpecialFilesAreIoErrorsWithoutBlocking) {
  namespace fs = std::filesystem;
  const fs::path dir = temp_path("fifo_model");
  fs::remove_all(dir);
  fs::create_directories(dir);
  moert_test::copy_checkpoint(kModel, dir);
  moert_test::make_fifo_at(dir / "config.json");
  Result r = moert("run --quiet -m " + dir.string() + " -p hi -n 2");  // would block forever on open()
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "config.json: is a FIFO")) << r.err;
  EXPECT_TRUE(contains(r.err, "MOERT_ERR_IO")) << r.err;
  r = moert("tokenize --tokenizer " + (dir / "config.json").string(), "x");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "is a FIFO")) << r.err;
  // /dev/zero would be read forever.
  fs::remove(dir / "config.json");
  fs::create_symlink("/dev/zero", dir / "config.json");
  r = moert("info -m " + dir.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "config.json: is a character device")) << r.err;
}

// `moert chat` under a pipe: Ctrl-C (SIGINT) during a reply cancels that reply and the chat goes on with
// the next line; Ctrl-C at the prompt, like Ctrl-D, ends it with status 0.
class Chat {
 public:
  Chat() {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe");
    err_path_ = temp_path("chat.err");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      const int e = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(e, 2);
      close(in[1]);
      close(out[0]);
      execl(kCli.c_str(), kCli.c_str(), "chat", "--quiet", "--ignore-eos", "--max-tokens", "100000",
            "--threads", "1", "--temperature", "0", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Chat() {
    if (in_ >= 0) close(in_);
    close(out_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void say(const std::string& line) { ASSERT_EQ(write(in_, line.data(), line.size()), ssize_t(line.size())); }
  void close_stdin() {
    close(in_);
    in_ = -1;
  }
  void interrupt() { kill(pid_, SIGINT); }
  // Reads stdout until at least `n` more bytes came (or 60 s passed); returns what came.
  std::string read_at_least(size_t n) {
    std::string got;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (got.size() < n && std::chrono::steady_clock::now() < end) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t k = read(out_, buf, sizeof buf);
      if (k <= 0) break;
      got.append(buf, static_cast<size_t>(k));
    }
    return got;
  }
  // Waits until stderr holds `times` occurrences of `what`.
  bool wait_err(const std::string& what, int times) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < end) {
      const std::string e = slurp(err_path_);
      int count = 0;
      for (size_t p = e.find(what); p != std::string::npos; p = e.find(what, p + 1)) ++count;
      if (count >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void drain() {
    for (;;) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) return;
      char buf[4096];
      if (read(out_, buf, sizeof buf) <= 0) return;
    }
  }
  // The exit status, or -1 when it has not exited within 60 s.
  int wait_exit() {
    for (int i = 0; i < 3000; ++i) {
      int w = 0;
      if (waitpid(pid_, &w, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
      }
      drain();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string err() const { return slurp(err_path_); }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool reaped_ = false;
  std::string err_path_;
};

TEST(CliArgs, ChatCtrlCCancelsTheReplyAndKeepsTheConversation) {
  Chat chat;
  chat.say("def add(a, b):\n");
  EXPECT_FALSE(chat.read_at_least(8).empty());  // the (endless) first reply is streaming
  chat.interrupt();
  ASSERT_TRUE(chat.wait_err("[reply cancelled]", 1)) << chat.err();
  chat.drain();
  chat.say("And subtract?\n");
  EXPECT_GE(chat.read_at_least(8).size(), 8u) << "no second reply after the cancelled one";
  chat.interrupt();
  ASSERT_TRUE(chat.wait_err("[reply cancelled]", 2)) << chat.err();
  chat.close_stdin();  // Ctrl-D at the prompt
  EXPECT_EQ(chat.wait_exit(), 0) << chat.err();
}

TEST(CliArgs, ChatCtrlCAtThePromptExits) {
  Chat chat;
  chat.say("def add(a, b):\n");
  EXPECT_FALSE(chat.read_at_least(8).empty());
  chat.interrupt();
  ASSERT_TRUE(chat.wait_err("[reply cancelled]", 1)) << chat.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // back at the prompt (or about to be)
  chat.interrupt();
  EXPECT_EQ(chat.wait_exit(), 0) << chat.err();
}

}  // namespace
