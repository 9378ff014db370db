// The moert program's text commands: `run` reproduces transformers' greedy continuations of the shipped
// model as text; `tokenize` / `detokenize` / `chat-template` give Hugging Face's ids and renders.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "golden_fixture.h"
#include "tokenizer/tokenizer.h"

namespace moert {
namespace {

// Runs a shell command, feeding `input` on stdin; returns its stdout.
std::string run(const std::string& cmd, const std::string& input = "") {
  // One stdin file per test and process: ctest runs the tests of this file in parallel processes, and
  // other checkouts' runs may share /tmp.
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string in =
      ::testing::TempDir() + "/cli_text_stdin_" + std::to_string(getpid()) + "_" + info->name() + ".txt";
  std::ofstream(in, std::ios::binary) << input;
  FILE* p = popen((cmd + " < " + in + " 2>/dev/null").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

const std::string kCli = MOERT_CLI;
const std::string kModel = MOERT_DEFAULT_MODEL_DIR;

TEST(CliText, RunReproducesReferenceContinuations) {
  SafetensorsFile ref(kModel + "/reference.safetensors");
  Tokenizer tok = Tokenizer::load(kModel + "/tokenizer.json", kModel + "/tokenizer_config.json");
  const char* prompts[] = {"def fibonacci(n):\n", "import numpy as np\n\n\ndef normalize(x):\n",
                           "class Stack:\n    def __init__(self):\n",
                           "# Read a CSV file and print the sum of each column\n"};
  for (int i = 0; i < 4; ++i) {
    const TensorInfo& g = ref.tensors().at("prompt" + std::to_string(i) + ".greedy");
    std::vector<int32_t> ids(reinterpret_cast<const int32_t*>(g.data),
                             reinterpret_cast<const int32_t*>(g.data) + g.numel());
    const std::string want = tok.decode(ids, true);
    // The default model is used when none is named.
    const std::string out =
        run(kCli + " run --quiet --no-echo --ignore-eos --max-tokens 48 --temperature 0 --prompt-file -",
            prompts[i]);
    EXPECT_EQ(out, want + "\n") << "prompt " << i;
  }
}

// Prefill in one process, decode in another: the continuation is what one process prints. A corrupt file
// or another model is a clear error, not a crash.
TEST(CliText, PrefillThenResumeInAnotherProcessPrintsTheSameContinuation) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string image =
      ::testing::TempDir() + "/cli_kv_" + std::to_string(getpid()) + "_" + info->name() + ".bin";
  const std::string prompt = "class Stack:\n    def __init__(self):\n";
  const std::string flags = " --quiet --ignore-eos --max-tokens 40 --temperature 0 --batch-invariant";
  run(kCli + " prefill --quiet --batch-invariant --prompt-file - --out " + image, prompt);
  const std::string resumed = run(kCli + " run --resume " + image + flags);
  const std::string one = run(kCli + " run --no-echo --prompt-file -" + flags, prompt);
  EXPECT_EQ(resumed, one);
  EXPECT_GT(resumed.size(), 20u);
  {
    std::fstream f(image, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x55');
  }
  const int rc = std::system((kCli + " run --quiet --resume " + image + " 2>/dev/null >/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::remove(image.c_str());
}

TEST(CliText, TokenizeMatchesHuggingFaceCases) {
  const std::string dir = std::string(MOERT_TEST_DATA) + "/tokenizer-deepseek-v3";
  std::ifstream f(dir + "/encode_cases.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(f, line) && n < 8) {  // each call loads the 7.6 MB tokenizer
    auto c = nlohmann::json::parse(line);
    std::string want;
    for (auto& id : c["ids"]) want += (want.empty() ? "" : ",") + std::to_string(id.get<int>());
    EXPECT_EQ(run(kCli + " tokenize --tokenizer " + dir + "/tokenizer.json", c["text"].get<std::string>()),
              want + "\n")
        << c["text"];
    if (c.value("decode_roundtrip", false) && !want.empty()) {
      EXPECT_EQ(run(kCli + " detokenize --tokenizer " + dir + "/tokenizer.json", want),
                c["text"].get<std::string>());
    }
    ++n;
  }
  EXPECT_EQ(n, 8);
  // --bos prepends the BOS id.
  EXPECT_EQ(run(kCli + " tokenize --bos --tokenizer " + dir + "/tokenizer.json", "").substr(0, 1), "0");
}

TEST(CliText, ChatTemplateMatchesJinjaCases) {
  const std::string dir = std::string(MOERT_TEST_DATA) + "/tokenizer-deepseek-v3";
  std::ifstream f(dir + "/chat_cases.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    auto c = nlohmann::json::parse(line);
    if (!c.contains("messages") || !c.contains("rendered")) continue;
    const bool gen = c.value("add_generation_prompt", true);
    EXPECT_EQ(run(kCli + " chat-template --tokenizer " + dir + "/tokenizer.json" +
                      (gen ? "" : " --no-generation-prompt"),
                  c["messages"].dump()),
              c["rendered"].get<std::string>())
        << c["name"];
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace moert

namespace moert {
namespace {

TEST(CliText, MakeModelWritesALoadableCheckpoint) {
  const std::string dir = ::testing::TempDir() + "/made_model_" + std::to_string(getpid());
  run(kCli + " make-model --out " + dir +
      " --hidden 256 --layers 3 --dense-layers 1 --heads 2 --q-lora 128 --experts 8 --groups 4 --topk-groups "
      "2"
      " --top-k 2 --moe-inter 128 --inter 512 --vocab 512 --mtp 1");
  const ModelConfig cfg = load_model_config(dir);
  EXPECT_EQ(cfg.hidden_size, 256);
  EXPECT_EQ(cfg.n_routed_experts, 8);
  EXPECT_TRUE(cfg.quant.fp8);
  auto backend = make_cpu_backend(1);
  DeepseekNetwork m(cfg, std::make_shared<WeightStore>(dir), *backend, ModelOptions{});
  EXPECT_EQ(m.weights().mtp.size(), 1u);
  run(kCli + " logits --model " + dir + " --tokens 1,2,3,4 --decode-from 2 --out " + dir + "/l.bin");
  std::ifstream f(dir + "/l.bin", std::ios::binary | std::ios::ate);
  EXPECT_EQ(static_cast<size_t>(f.tellg()), 4u * 512 * 4);
}

}  // namespace
}  // namespace moert

namespace moert {
namespace {

TEST(CliText, ChatKeepsHistoryAndStreamsAnswers) {
  // Two turns on stdin: each answer is streamed; the second prompt includes the first exchange.
  const std::string out =
      run(kCli + " chat --quiet --max-tokens 8 --ignore-eos", "def add(a, b):\nAnd subtract?\n");
  size_t lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_GE(lines, 2u) << out;
  EXPECT_FALSE(out.empty());
}

}  // namespace
}  // namespace moert
