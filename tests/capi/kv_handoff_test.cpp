// KV hand-off through the C API on the shipped model: a session's export continued by another model
// instance (moert_generate_resume, moert_session_import) gives the tokens one process gives, and a
// mismatched, truncated or corrupt image is MOERT_ERR_FORMAT naming the check that failed. The CLI's two-
// process form (moert prefill, moert run --resume) is tested in tests/golden/cli_text_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "capi_test_model.h"
#include "moert/moert.h"

namespace {

const std::string kModel = MOERT_DEFAULT_MODEL_DIR;

moert_model* load(const std::string& dir, const char* extra_key = nullptr, int64_t extra = 0) {
  moert_options* o = nullptr;
  moert_options_create(&o);
  moert_options_set_int(o, "threads", 2);
  moert_options_set_int(o, "batch_invariant", 1);
  if (extra_key) moert_options_set_int(o, extra_key, extra);
  moert_model* m = nullptr;
  EXPECT_EQ(moert_model_load(dir.c_str(), o, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_options_free(o);
  return m;
}

moert_options* greedy(int64_t n) {
  moert_options* g = nullptr;
  moert_options_create(&g);
  moert_options_set_int(g, "max_tokens", n);
  moert_options_set_float(g, "temperature", 0.0);
  moert_options_set_int(g, "ignore_eos", 1);
  return g;
}

std::vector<int32_t> drain(moert_stream* s) {
  std::vector<int32_t> out;
  for (;;) {
    int32_t tok = -1, fin = 0;
    EXPECT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK);
    if (tok >= 0) out.push_back(tok);
    if (fin != MOERT_FINISH_NONE) break;
  }
  moert_stream_free(s);
  return out;
}

const std::vector<int32_t> kPrompt = {1, 755, 7001, 5, 88, 12, 401, 9, 3000, 17, 640, 2222, 31, 7, 404, 55};

std::vector<uint8_t> export_prompt(moert_model* m, const std::vector<int32_t>& prompt) {
  moert_session* s = nullptr;
  EXPECT_EQ(moert_session_create(m, &s), MOERT_OK);
  int64_t vocab = 0;
  moert_model_info_int(m, "vocab_size", &vocab);
  std::vector<float> logits(vocab);
  EXPECT_EQ(moert_session_eval(s, prompt.data(), prompt.size(), 0, logits.data(), logits.size()), MOERT_OK)
      << moert_last_error();
  size_t n = 0;
  EXPECT_EQ(moert_session_export(s, nullptr, 0, &n), MOERT_OK) << moert_last_error();
  std::vector<uint8_t> image(n);
  EXPECT_EQ(moert_session_export(s, image.data(), image.size(), &n), MOERT_OK);
  moert_session_free(s);
  return image;
}

TEST(KvHandoff, ResumedInAnotherModelGivesTheTokensOfOneProcess) {
  moert_model* prefill = load(kModel);
  moert_model* decode = load(kModel);
  const std::vector<uint8_t> image = export_prompt(prefill, kPrompt);
  moert_options* g = greedy(40);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(prefill, kPrompt.data(), kPrompt.size(), g, &s), MOERT_OK);
  const std::vector<int32_t> one_process = drain(s);
  ASSERT_EQ(moert_generate_resume(decode, image.data(), image.size(), g, &s), MOERT_OK) << moert_last_error();
  EXPECT_EQ(drain(s), one_process);
  // Seeded sampling too: the first token comes from the image's logits with the request's own generator.
  moert_options_set_float(g, "temperature", 0.9);
  moert_options_set_int(g, "seed", 77);
  ASSERT_EQ(moert_generate_tokens(prefill, kPrompt.data(), kPrompt.size(), g, &s), MOERT_OK);
  const std::vector<int32_t> sampled = drain(s);
  ASSERT_EQ(moert_generate_resume(decode, image.data(), image.size(), g, &s), MOERT_OK);
  EXPECT_EQ(drain(s), sampled);
  moert_options_free(g);
  moert_model_free(prefill);
  moert_model_free(decode);
}

TEST(KvHandoff, ImportedSessionEvaluatesOnLikeTheOriginal) {
  moert_model* a = load(kModel);
  moert_model* b = load(kModel, "prefix_cache", 0);
  const std::vector<uint8_t> image = export_prompt(a, kPrompt);
  moert_session* s = nullptr;
  ASSERT_EQ(moert_session_import(b, image.data(), image.size(), &s), MOERT_OK) << moert_last_error();
  int64_t len = 0, vocab = 0;
  moert_session_length(s, &len);
  EXPECT_EQ(len, static_cast<int64_t>(kPrompt.size()));
  moert_model_info_int(a, "vocab_size", &vocab);
  const int32_t next[2] = {42, 43};
  std::vector<float> got(2 * vocab), want(2 * vocab);
  ASSERT_EQ(moert_session_eval(s, next, 2, 1, got.data(), got.size()), MOERT_OK);
  moert_session* fresh = nullptr;
  moert_session_create(a, &fresh);
  std::vector<float> scratch(vocab);
  moert_session_eval(fresh, kPrompt.data(), kPrompt.size(), 0, scratch.data(), scratch.size());
  moert_session_eval(fresh, next, 2, 1, want.data(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
  // The import is exported again byte for byte (after the same two tokens, from either).
  size_t na = 0, nb = 0;
  moert_session_export(s, nullptr, 0, &nb);
  moert_session_export(fresh, nullptr, 0, &na);
  ASSERT_EQ(na, nb);
  std::vector<uint8_t> ia(na), ib(nb);
  moert_session_export(s, ib.data(), nb, &nb);
  moert_session_export(fresh, ia.data(), na, &na);
  EXPECT_EQ(ia, ib);
  moert_session_free(s);
  moert_session_free(fresh);
  moert_model_free(a);
  moert_model_free(b);
}

void expect_rejected(moert_model* m, const std::vector<uint8_t>& image, const std::string& check) {
  moert_stream* s = nullptr;
  moert_options* g = greedy(4);
  EXPECT_EQ(moert_generate_resume(m, image.data(), image.size(), g, &s), MOERT_ERR_FORMAT) << check;
  EXPECT_NE(std::string(moert_last_error()).find("(" + check + ")"), std::string::npos) << moert_last_error();
  moert_session* sess = nullptr;
  EXPECT_EQ(moert_session_import(m, image.data(), image.size(), &sess), MOERT_ERR_FORMAT) << check;
  moert_options_free(g);
}

// Rewrites the trailing checksum so a header change is caught by its own check, not the checksum.
void reseal(std::vector<uint8_t>& img) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i + 8 < img.size(); ++i) h = (h ^ img[i]) * 1099511628211ull;
  std::memcpy(img.data() + img.size() - 8, &h, 8);
}

TEST(KvHandoff, BadImagesAreFormatErrorsNamingTheCheck) {
  moert_model* m = load(kModel);
  const std::vector<uint8_t> good = export_prompt(m, kPrompt);
  std::vector<uint8_t> img = good;
  img[0] = 'X';
  expect_rejected(m, img, "magic");
  img = good;
  img[8] = 9;
  expect_rejected(m, img, "version");
  expect_rejected(m, std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2), "truncated");
  expect_rejected(m, std::vector<uint8_t>(good.begin(), good.begin() + 10), "truncated");
  img = good;
  img[good.size() / 2] ^= 0x40;
  expect_rejected(m, img, "checksum");
  img = good;
  img[16] ^= 1;  // the fingerprint: made with another checkpoint
  reseal(img);
  expect_rejected(m, img, "fingerprint");
  img = good;
  std::memcpy(img.data() + 64, "\xff\xff\xff\x7f", 4);  // the first token id
  reseal(img);
  expect_rejected(m, img, "token id");
  img = good;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(img.data() + img.size() - 12, &nan, 4);  // the last cache value
  reseal(img);
  expect_rejected(m, img, "values");
  // Another checkpoint (the random tiny V3): its own fingerprint, and its own shape.
  moert_model* other = load(std::string(MOERT_TEST_DATA) + "/tiny-v3-fp8");
  expect_rejected(other, good, "fingerprint");
  // A session truncated since its last evaluation has no logits to export.
  moert_session* s = nullptr;
  moert_session_create(m, &s);
  int64_t vocab = 0;
  moert_model_info_int(m, "vocab_size", &vocab);
  std::vector<float> logits(vocab);
  moert_session_eval(s, kPrompt.data(), kPrompt.size(), 0, logits.data(), logits.size());
  moert_session_truncate(s, 5);
  size_t n = 0;
  EXPECT_EQ(moert_session_export(s, nullptr, 0, &n), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_generate_resume(m, nullptr, 0, nullptr, nullptr), MOERT_ERR_INVALID_ARGUMENT);
  moert_session_free(s);
  moert_model_free(other);
  moert_model_free(m);
}

}  // namespace

// With speculation the prefix cache's pages carry the MTP layer's entries, which a KV image does not: a
// resumed request must not publish its prompt's pages (a later request would draft from empty MTP entries).
// Without speculation the same resumed request does publish them (the control: the check can fail).
TEST(KvHandoff, ResumedRequestsPublishPagesOnlyWithoutSpeculation) {
  const std::string mtp_model = std::string(MOERT_TEST_DATA) + "/moert-tiny-coder-mtp";
  std::vector<int32_t> prompt;
  for (int i = 0; i < 150; ++i) prompt.push_back(static_cast<int32_t>(100 + (i * 37) % 5000));
  auto cached_after_resume = [&](const char* speculative) {
    moert_model* m = moert_test::load_model(mtp_model, speculative);
    const std::vector<uint8_t> image = export_prompt(m, prompt);
    moert_options* g = greedy(8);
    moert_stream* s = nullptr;
    EXPECT_EQ(moert_generate_resume(m, image.data(), image.size(), g, &s), MOERT_OK) << moert_last_error();
    EXPECT_EQ(drain(s).size(), 8u);
    // The same prompt again: its cached prefix is what the resumed request published.
    EXPECT_EQ(moert_generate_tokens(m, prompt.data(), prompt.size(), g, &s), MOERT_OK);
    for (;;) {
      int32_t tok = -1, fin = 0;
      EXPECT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK);
      if (fin != MOERT_FINISH_NONE) break;
    }
    int64_t cached = -1;
    EXPECT_EQ(moert_stream_counter(s, "cached_prompt_tokens", &cached), MOERT_OK) << moert_last_error();
    moert_stream_free(s);
    moert_options_free(g);
    moert_model_free(m);
    return cached;
  };
  EXPECT_EQ(cached_after_resume("on"), 0);
  EXPECT_GE(cached_after_resume("off"), 128);
}
