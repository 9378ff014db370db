// The "logit_bias" generation option through the shared library: a bias of +100 forces a token, -100 bans
// the greedy one (the next most likely is drawn), the log probabilities stay the model's, sampled and
// speculative requests follow it too, and malformed entries or ids outside the vocabulary are refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "capi_test_model.h"
#include "moert/moert.h"

namespace {

const std::string kModel = MOERT_DEFAULT_MODEL_DIR;
const std::string kMtpModel = std::string(MOERT_TEST_DATA) + "/moert-tiny-coder-mtp";

using moert_test::load_model;

struct Steps {
  std::vector<int32_t> tokens;
  std::vector<std::vector<int32_t>> top;  // each step's two most likely tokens (logprobs 2)
};

Steps generate(moert_model* m, const std::vector<std::string>& bias, double temperature = 0.0, int n = 8) {
  moert_options* g = nullptr;
  moert_options_create(&g);
  moert_options_set_int(g, "max_tokens", n);
  moert_options_set_int(g, "ignore_eos", 1);
  moert_options_set_float(g, "temperature", temperature);
  moert_options_set_int(g, "seed", 5);
  moert_options_set_int(g, "logprobs", 2);
  for (const std::string& b : bias) EXPECT_EQ(moert_options_add_string(g, "logit_bias", b.c_str()), MOERT_OK);
  moert_stream* s = nullptr;
  EXPECT_EQ(moert_generate_text(m, "def fibonacci(n):\n", g, &s), MOERT_OK) << moert_last_error();
  Steps r;
  for (int32_t tok = 0, fin = MOERT_FINISH_NONE; s && fin == MOERT_FINISH_NONE;) {
    EXPECT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK);
    if (tok < 0) continue;
    r.tokens.push_back(tok);
    std::vector<int32_t> ids(2);
    size_t k = 0;
    EXPECT_EQ(moert_stream_logprobs(s, nullptr, ids.data(), nullptr, 2, &k), MOERT_OK);
    r.top.push_back(ids);
  }
  moert_stream_free(s);
  moert_options_free(g);
  return r;
}

TEST(CapiLogitBias, ForcesAndBansTokensWhileTheLogprobsStayTheModels) {
  moert_model* m = load_model(kModel, "off");
  const Steps plain = generate(m, {});
  ASSERT_EQ(plain.tokens.size(), 8u);
  // +100 on one token: every step draws it, greedy or sampled.
  const Steps forced = generate(m, {"65:100"});
  EXPECT_EQ(forced.tokens, std::vector<int32_t>(8, 65));
  EXPECT_EQ(generate(m, {"65:100"}, 1.0).tokens, std::vector<int32_t>(8, 65));
  // -100 on the first greedy token: the first step takes the model's second choice instead.
  const Steps banned = generate(m, {std::to_string(plain.tokens[0]) + ":-100"});
  EXPECT_EQ(banned.tokens[0], plain.top[0][1]);
  EXPECT_EQ(banned.top[0], plain.top[0]) << "logprobs are the model's, not the biased ones";
  // One bias per token: a later entry for the same id replaces the earlier one.
  EXPECT_EQ(generate(m, {"65:-100", "65:100"}).tokens, std::vector<int32_t>(8, 65));
  // Several entries: the last two steps' choices.
  const Steps two = generate(m, {"65:100", "66:100.0"});
  for (int32_t t : two.tokens) EXPECT_TRUE(t == 65 || t == 66);
  moert_model_free(m);
}

TEST(CapiLogitBias, SpeculativeDecodingFollowsTheBias) {
  // Verified drafts use the biased distribution: greedy output with drafts equals without.
  std::vector<std::vector<int32_t>> runs;
  for (const char* spec : {"off", "on"}) {
    moert_model* m = load_model(kMtpModel, spec);
    runs.push_back(generate(m, {"65:3.5", "30:-100"}, 0.0, 24).tokens);
    moert_model_free(m);
  }
  EXPECT_EQ(runs[0], runs[1]);
  for (int32_t t : runs[0]) EXPECT_NE(t, 30);
}

TEST(CapiLogitBias, BadEntriesAreInvalidArgument) {
  moert_options* g = nullptr;
  moert_options_create(&g);
  for (const char* bad :
       {"", "12", "12:", ":3", "x:1", "1:x", "-1:5", "1:101", "1:-100.5", "1:nan", "1:5 "}) {
    EXPECT_EQ(moert_options_add_string(g, "logit_bias", bad), MOERT_ERR_INVALID_ARGUMENT)
        << "'" << bad << "'";
    EXPECT_NE(std::string(moert_last_error()).find("TOKEN_ID:BIAS"), std::string::npos) << moert_last_error();
  }
  // An id past the vocabulary: refused when generation starts.
  moert_model* m = load_model(kModel, "off");
  EXPECT_EQ(moert_options_add_string(g, "logit_bias", "99999:1"), MOERT_OK);
  moert_stream* s = nullptr;
  EXPECT_EQ(moert_generate_text(m, "x", g, &s), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("outside the vocabulary"), std::string::npos)
      << moert_last_error();
  EXPECT_EQ(s, nullptr);
  moert_model_free(m);
  moert_options_free(g);
}

}  // namespace
