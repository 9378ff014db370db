// `moert logits` end to end: the program (which uses only the C API) writes float32 [tokens, vocab] files
// equal to transformers' logits, in one forward and with --decode-from K through the KV cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "golden_fixture.h"

namespace moert {
namespace {

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<float> v(static_cast<size_t>(f.tellg()) / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

std::string join(const std::vector<int32_t>& t) {
  std::string s;
  for (size_t i = 0; i < t.size(); ++i) s += (i ? "," : "") + std::to_string(t[i]);
  return s;
}

// Runs a command with its stderr in this test's own file (tests run in parallel under ctest).
std::string stderr_path() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  for (char& c : name)
    if (c == '/') c = '_';
  return ::testing::TempDir() + "/" + name + "_" + std::to_string(getpid()) +
         ".stderr";  // /tmp may be shared
}
int run(const std::string& cmd) {
  return std::system((cmd + " 2>" + stderr_path()).c_str());
}

class CliLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(CliLogits, MatchesReferenceFullAndIncremental) {
  testing::Golden g(GetParam());
  const std::string out =
      ::testing::TempDir() + "/logits_" + GetParam() + "_" + std::to_string(getpid()) + ".bin";
  for (int c = 0; g.has("case" + std::to_string(c) + ".prompt"); ++c) {
    const std::string k = "case" + std::to_string(c);
    std::vector<int32_t> prompt = g.ints(k + ".prompt"), dec = g.ints(k + ".decode_inputs");
    const int64_t V = g.cfg.vocab_size;
    // One forward over the prompt.
    ASSERT_EQ(run(std::string(MOERT_CLI) + " logits --model " + g.dir + " --tokens " + join(prompt) +
                  " --out " + out + " --threads 2"),
              0);
    std::vector<float> got = read_floats(out);
    ASSERT_EQ(got.size(), prompt.size() * V);
    EXPECT_LT(testing::max_abs_diff(got.data(), g.floats(k + ".prompt_logits"), got.size()), 2e-4f) << k;
    // Prefill the prompt, then the greedy tokens one at a time.
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), dec.begin(), dec.end());
    ASSERT_EQ(run(std::string(MOERT_CLI) + " logits --model " + g.dir + " --tokens " + join(all) + " --out " +
                  out + " --decode-from " + std::to_string(prompt.size())),
              0);
    got = read_floats(out);
    ASSERT_EQ(got.size(), all.size() * V);
    EXPECT_LT(testing::max_abs_diff(got.data(), g.floats(k + ".prompt_logits"), prompt.size() * V), 2e-4f)
        << k;
    EXPECT_LT(
        testing::max_abs_diff(got.data() + prompt.size() * V, g.floats(k + ".decode_logits"), dec.size() * V),
        2e-4f)
        << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CliLogits,
                         ::testing::Values("tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16", "tiny-v2lite-bf16"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

TEST(CliLogitsErrors, BadInputsFailWithAMessage) {
  const std::string dir = std::string(MOERT_TEST_DATA) + "/tiny-v3-bf16";
  const std::string cli = MOERT_CLI;
  EXPECT_NE(run(cli + " logits --model " + dir + " --tokens 1,99999 --out /dev/null"), 0);
  std::ifstream err(stderr_path());
  std::string msg((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(msg.find("99999"), std::string::npos) << msg;
  EXPECT_NE(run(cli + " logits --model /nonexistent --tokens 1 --out /dev/null"), 0);
  EXPECT_NE(run(cli + " logits --model " + dir + " --tokens 1,x --out /dev/null"), 0);
  EXPECT_NE(run(cli + " logits --model " + dir + " --tokens 1 --out /dev/null --activations fp16"), 0);
}

}  // namespace
}  // namespace moert
