// Broken checkpoints through the C API (linked only against the shared library): moert_model_load returns
// the status, moert_last_error() names the file and the tensor, *out stays untouched, and the process
// carries on (a good model loads afterwards on the same thread).
#include <gtest/gtest.h>

#include <thread>

#include "corruptions.h"
#include "moert/moert.h"

namespace {

using namespace moert_test;

const fs::path kData = MOERT_TEST_DATA;

moert_options* small_options() {
  moert_options* o = nullptr;
  EXPECT_EQ(moert_options_create(&o), MOERT_OK);
  EXPECT_EQ(moert_options_set_int(o, "threads", 1), MOERT_OK);
  EXPECT_EQ(moert_options_set_int(o, "kv_cache_bytes", 1 << 20), MOERT_OK);
  return o;
}

class CapiFault : public ::testing::TestWithParam<Corruption> {};

TEST_P(CapiFault, LoadReturnsStatusAndMessage) {
  const Corruption& c = GetParam();
  TempDir tmp;
  copy_checkpoint(kData / c.fixture, tmp.path());
  c.apply(tmp.path());
  moert_options* o = small_options();
  moert_model* sentinel = reinterpret_cast<moert_model*>(0x1);
  moert_model* m = sentinel;
  moert_status st = moert_model_load(tmp.str().c_str(), o, nullptr, nullptr, &m);
  moert_options_free(o);
  const std::string msg = moert_last_error();
  EXPECT_EQ(st, c.code) << moert_status_name(st) << ": " << msg;
  EXPECT_EQ(m, sentinel) << "out-parameter written on failure";
  for (const auto& want : c.expect)
    EXPECT_NE(msg.find(expand(want, tmp.str())), std::string::npos)
        << "message lacks '" << expand(want, tmp.str()) << "': " << msg;
  if (st == MOERT_OK && m != sentinel) moert_model_free(m);
}

INSTANTIATE_TEST_SUITE_P(All, CapiFault, ::testing::ValuesIn(corruptions()),
                         [](const ::testing::TestParamInfo<Corruption>& i) {
                           std::string n = i.param.name;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// After a string of failed loads the library still works: a good checkpoint loads and evaluates, and the
// last error is cleared by the successful call.
TEST(CapiFault, SurvivesAndRecovers) {
  for (const auto& c : corruptions()) {
    if (c.fixture != "tiny-v3-bf16") continue;
    TempDir tmp;
    copy_checkpoint(kData / c.fixture, tmp.path());
    c.apply(tmp.path());
    moert_model* m = nullptr;
    EXPECT_NE(moert_model_load(tmp.str().c_str(), nullptr, nullptr, nullptr, &m), MOERT_OK);
    EXPECT_EQ(m, nullptr);
  }
  moert_options* o = small_options();
  moert_model* m = nullptr;
  ASSERT_EQ(moert_model_load((kData / "tiny-v3-bf16").string().c_str(), o, nullptr, nullptr, &m), MOERT_OK)
      << moert_last_error();
  moert_options_free(o);
  EXPECT_STREQ(moert_last_error(), "");
  int64_t vocab = 0;
  ASSERT_EQ(moert_model_info_int(m, "vocab_size", &vocab), MOERT_OK);
  moert_session* s = nullptr;
  ASSERT_EQ(moert_session_create(m, &s), MOERT_OK);
  const int32_t tokens[3] = {1, 2, 3};
  std::vector<float> logits(static_cast<size_t>(vocab));
  EXPECT_EQ(moert_session_eval(s, tokens, 3, 0, logits.data(), logits.size()), MOERT_OK) << moert_last_error();
  moert_session_free(s);
  moert_model_free(m);
}

// The last error is per thread: a failure on one thread leaves another thread's message alone.
TEST(CapiFault, LastErrorIsPerThread) {
  moert_model* m = nullptr;
  ASSERT_NE(moert_model_load("/nonexistent/dir", nullptr, nullptr, nullptr, &m), MOERT_OK);
  const std::string mine = moert_last_error();
  EXPECT_NE(mine.find("/nonexistent/dir"), std::string::npos) << mine;
  std::thread t([] {
    EXPECT_STREQ(moert_last_error(), "");
    moert_model* m2 = nullptr;
    EXPECT_EQ(moert_model_load(nullptr, nullptr, nullptr, nullptr, &m2), MOERT_ERR_INVALID_ARGUMENT);
  });
  t.join();
  EXPECT_EQ(std::string(moert_last_error()), mine);
}

TEST(CapiFault, NullArguments) {
  moert_model* m = nullptr;
  EXPECT_EQ(moert_model_load(nullptr, nullptr, nullptr, nullptr, &m), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("model_dir"), std::string::npos);
  EXPECT_EQ(moert_model_load((kData / "tiny-v3-bf16").string().c_str(), nullptr, nullptr, nullptr, nullptr),
            MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("out"), std::string::npos);
}

// A config field moert does not support comes back as MOERT_ERR_UNSUPPORTED naming the field and value.
TEST(CapiFault, UnsupportedConfigNamesField) {
  TempDir tmp;
  copy_checkpoint(kData / "tiny-v3-bf16", tmp.path());
  edit_config(tmp.path(), [](json& c) { c["topk_method"] = "random_pick"; });
  moert_model* m = nullptr;
  EXPECT_EQ(moert_model_load(tmp.str().c_str(), nullptr, nullptr, nullptr, &m), MOERT_ERR_UNSUPPORTED);
  const std::string msg = moert_last_error();
  EXPECT_NE(msg.find("topk_method"), std::string::npos) << msg;
  EXPECT_NE(msg.find("random_pick"), std::string::npos) << msg;
  EXPECT_STREQ(moert_status_name(MOERT_ERR_UNSUPPORTED), "MOERT_ERR_UNSUPPORTED");
}

}  // namespace
