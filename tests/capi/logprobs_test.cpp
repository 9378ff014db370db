// moert_stream_logprobs and the "logprobs" generation option, through the shared library only: each
// generated token's log probability and the step's most likely tokens are the log-softmax of the model's
// logits at that step (checked against moert_model_logits over the same tokens), whatever the sampling
// options, with MTP speculation as without it, and every misuse is an INVALID_ARGUMENT.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "capi_test_model.h"
#include "moert/moert.h"

namespace {

const std::string kModel = MOERT_DEFAULT_MODEL_DIR;
const std::string kMtpModel = std::string(MOERT_TEST_DATA) + "/moert-tiny-coder-mtp";

using moert_test::load_model;

struct Step {
  int32_t token = -1;
  float logprob = 0;
  std::vector<int32_t> ids;
  std::vector<float> values;
};

moert_options* gen(int64_t max_tokens, int64_t logprobs, double temperature = 0.0) {
  moert_options* o = nullptr;
  moert_options_create(&o);
  moert_options_set_int(o, "max_tokens", max_tokens);
  moert_options_set_int(o, "ignore_eos", 1);
  moert_options_set_float(o, "temperature", temperature);
  if (logprobs >= -1) {
    EXPECT_EQ(moert_options_set_int(o, "logprobs", logprobs), MOERT_OK);
  }
  return o;
}

// Every token event of the stream with its log probabilities (top: the option's N).
std::vector<Step> drain(moert_stream* s, size_t top) {
  std::vector<Step> out;
  for (;;) {
    int32_t tok = 0, fin = 0;
    EXPECT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK) << moert_last_error();
    if (tok >= 0) {
      Step st;
      st.token = tok;
      st.ids.assign(top + 2, -7);  // room past N: what is written stops at N
      st.values.assign(top + 2, 7.0f);
      size_t n = 99;
      EXPECT_EQ(moert_stream_logprobs(s, &st.logprob, st.ids.data(), st.values.data(), st.ids.size(), &n),
                MOERT_OK)
          << moert_last_error();
      EXPECT_EQ(n, top);
      EXPECT_EQ(st.ids[top], -7);
      st.ids.resize(top);
      st.values.resize(top);
      out.push_back(st);
    }
    if (fin != MOERT_FINISH_NONE) return out;
  }
}

// log-softmax of the last row of moert_model_logits over `tokens`.
std::vector<double> log_softmax_after(moert_model* m, const std::vector<int32_t>& tokens) {
  int64_t vocab = 0;
  EXPECT_EQ(moert_model_info_int(m, "vocab_size", &vocab), MOERT_OK);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(vocab));
  EXPECT_EQ(moert_model_logits(m, tokens.data(), tokens.size(), logits.data(), logits.size()), MOERT_OK)
      << moert_last_error();
  const float* row = logits.data() + (tokens.size() - 1) * static_cast<size_t>(vocab);
  double mx = row[0], sum = 0;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max<double>(mx, row[i]);
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) out[i] = row[i] - mx - std::log(sum);
  return out;
}

std::vector<int32_t> tokenize(moert_model* m, const char* text) {
  moert_tokenizer* t = nullptr;
  EXPECT_EQ(moert_model_tokenizer(m, &t), MOERT_OK);
  size_t n = 0;
  EXPECT_EQ(moert_tokenize(t, text, std::strlen(text), -1, 1, nullptr, 0, &n), MOERT_OK);
  std::vector<int32_t> ids(n);
  EXPECT_EQ(moert_tokenize(t, text, std::strlen(text), -1, 1, ids.data(), n, &n), MOERT_OK);
  moert_tokenizer_free(t);
  return ids;
}

// Each step's figures against the log-softmax of the logits over the prompt and the tokens before it.
void expect_model_logprobs(moert_model* m, const std::vector<int32_t>& prompt,
                           const std::vector<Step>& steps) {
  std::vector<int32_t> seq = prompt;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::vector<double> want = log_softmax_after(m, seq);
    const Step& st = steps[i];
    EXPECT_NEAR(st.logprob, want[st.token], 1e-3) << "step " << i;
    for (size_t k = 0; k < st.ids.size(); ++k) {
      EXPECT_NEAR(st.values[k], want[st.ids[k]], 1e-3) << "step " << i << " rank " << k;
      if (k > 0) {
        EXPECT_GE(st.values[k - 1], st.values[k]) << "most likely first";
      }
    }
    // The top N are the N largest: nothing outside them beats the last one.
    for (size_t v = 0; v < want.size() && !st.ids.empty(); ++v) {
      if (std::find(st.ids.begin(), st.ids.end(), static_cast<int32_t>(v)) == st.ids.end()) {
        ASSERT_LE(want[v], st.values.back() + 1e-3) << "step " << i << " token " << v;
      }
    }
    seq.push_back(st.token);
  }
}

TEST(CapiLogprobs, GreedyTokensAreTheMostLikelyWithTheModelsLogprobs) {
  moert_model* m = load_model(kModel);
  const std::vector<int32_t> prompt = tokenize(m, "def fibonacci(n):\n");
  moert_options* g = gen(12, 5);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(m, prompt.data(), prompt.size(), g, &s), MOERT_OK);
  const std::vector<Step> steps = drain(s, 5);
  ASSERT_EQ(steps.size(), 12u);
  for (const Step& st : steps) {
    EXPECT_EQ(st.ids[0], st.token) << "greedy takes the most likely token";
    EXPECT_EQ(st.values[0], st.logprob);
    EXPECT_LT(st.logprob, 0.0f);
  }
  expect_model_logprobs(m, prompt, steps);
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
}

TEST(CapiLogprobs, SampledTokensReportTheModelsDistributionNotTheSamplers) {
  moert_model* m = load_model(kModel);
  const std::vector<int32_t> prompt = tokenize(m, "import numpy as np\n");
  // Tempered and truncated sampling: the token drawn follows them, its log probability does not.
  moert_options* g = gen(10, 3, 1.8);
  moert_options_set_int(g, "top_k", 4);
  moert_options_set_int(g, "seed", 11);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(m, prompt.data(), prompt.size(), g, &s), MOERT_OK);
  const std::vector<Step> steps = drain(s, 3);
  ASSERT_EQ(steps.size(), 10u);
  expect_model_logprobs(m, prompt, steps);
  bool drew_a_less_likely_token = false;
  for (const Step& st : steps) drew_a_less_likely_token |= st.token != st.ids[0];
  EXPECT_TRUE(drew_a_less_likely_token) << "at temperature 1.8 some draw should not be the argmax";
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
}

TEST(CapiLogprobs, ZeroGivesTheTokensOwnOnly) {
  moert_model* m = load_model(kModel);
  moert_options* g = gen(4, 0);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_text(m, "class Stack:\n", g, &s), MOERT_OK);
  int32_t tok = -1, fin = 0;
  ASSERT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK);
  ASSERT_GE(tok, 0);
  float lp = 1.0f;
  size_t n = 99;
  EXPECT_EQ(moert_stream_logprobs(s, &lp, nullptr, nullptr, 0, &n), MOERT_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_LT(lp, 0.0f);
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
}

// A resumed sequence's first token is drawn from the logits the image carries: its log probabilities too.
TEST(CapiLogprobs, ResumedStreamsReportTheModelsLogprobs) {
  moert_model* m = load_model(kModel);
  const std::vector<int32_t> prompt = tokenize(m, "def fibonacci(n):\n");
  moert_session* sess = nullptr;
  ASSERT_EQ(moert_session_create(m, &sess), MOERT_OK);
  int64_t vocab = 0;
  ASSERT_EQ(moert_model_info_int(m, "vocab_size", &vocab), MOERT_OK);
  std::vector<float> last(static_cast<size_t>(vocab));
  ASSERT_EQ(moert_session_eval(sess, prompt.data(), prompt.size(), 0, last.data(), last.size()), MOERT_OK);
  size_t need = 0;
  ASSERT_EQ(moert_session_export(sess, nullptr, 0, &need), MOERT_OK);
  std::vector<char> image(need);
  ASSERT_EQ(moert_session_export(sess, image.data(), image.size(), &need), MOERT_OK);
  moert_session_free(sess);
  moert_options* g = gen(5, 2);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_resume(m, image.data(), image.size(), g, &s), MOERT_OK) << moert_last_error();
  const std::vector<Step> steps = drain(s, 2);
  ASSERT_EQ(steps.size(), 5u);
  expect_model_logprobs(m, prompt, steps);
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
}

// A verify step's tokens come from its rows: the same figures as decoding one token at a time.
TEST(CapiLogprobs, SpeculativeDecodingReportsTheSameLogprobs) {
  std::vector<std::vector<Step>> runs;
  for (const char* spec : {"off", "on"}) {
    moert_model* m = load_model(kMtpModel, spec);
    moert_options* g = gen(24, 2);
    moert_stream* s = nullptr;
    ASSERT_EQ(moert_generate_text(m, "def fibonacci(n):\n", g, &s), MOERT_OK);
    runs.push_back(drain(s, 2));
    int64_t accepted = 0;
    EXPECT_EQ(moert_stream_counter(s, "accepted_drafts", &accepted), MOERT_OK);
    if (std::string(spec) == "on") {
      EXPECT_GT(accepted, 0) << "some tokens came from verify rows";
    }
    moert_stream_free(s);
    moert_options_free(g);
    moert_model_free(m);
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  for (size_t i = 0; i < runs[0].size(); ++i) {
    EXPECT_EQ(runs[0][i].token, runs[1][i].token) << "step " << i;
    EXPECT_NEAR(runs[0][i].logprob, runs[1][i].logprob, 1e-4) << "step " << i;
    EXPECT_EQ(runs[0][i].ids, runs[1][i].ids) << "step " << i;
  }
}

TEST(CapiLogprobs, MisuseIsInvalidArgument) {
  moert_model* m = load_model(kModel);
  float lp = 0;
  size_t n = 0;
  EXPECT_EQ(moert_stream_logprobs(nullptr, &lp, nullptr, nullptr, 0, &n), MOERT_ERR_INVALID_ARGUMENT);

  moert_options* o = nullptr;
  moert_options_create(&o);
  EXPECT_EQ(moert_options_set_int(o, "logprobs", 21), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_options_set_int(o, "logprobs", -2), MOERT_ERR_INVALID_ARGUMENT);
  moert_options_free(o);

  // Started with logprobs: nothing before the first event, nothing for the final event without a token.
  moert_options* g = gen(2, 1);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_text(m, "x = ", g, &s), MOERT_OK);
  EXPECT_EQ(moert_stream_logprobs(s, &lp, nullptr, nullptr, 0, &n), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("no token event"), std::string::npos) << moert_last_error();
  drain(s, 1);
  int32_t tok = 0, fin = 0;
  ASSERT_EQ(moert_stream_next(s, 0, &tok, &fin), MOERT_OK);
  ASSERT_EQ(tok, -1);
  EXPECT_EQ(moert_stream_logprobs(s, &lp, nullptr, nullptr, 0, &n), MOERT_ERR_INVALID_ARGUMENT);
  moert_stream_free(s);
  moert_options_free(g);

  // Started without: each token event says so.
  g = gen(2, -2);  // no logprobs key
  ASSERT_EQ(moert_generate_text(m, "x = ", g, &s), MOERT_OK);
  ASSERT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK);
  ASSERT_GE(tok, 0);
  EXPECT_EQ(moert_stream_logprobs(s, &lp, nullptr, nullptr, 0, &n), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("logprobs"), std::string::npos) << moert_last_error();
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
}

}  // namespace
