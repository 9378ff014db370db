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
  EXPECT_EQ(moert_session_eval(s, tokens, 3, 0, logits.data(), logits.size()), MOERT_OK)
      << moert_last_error();
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

// Tokenizer files go through the same regular-file check: a FIFO beside the weights fails the load at
// once (it used to block forever), and so does moert_tokenizer_load on one.
TEST(CapiFault, TokenizerFifoIsIoError) {
  TempDir tmp;
  copy_checkpoint(kData / "tiny-v3-bf16", tmp.path());
  make_fifo(tmp.path() / "tokenizer.json");
  moert_model* m = nullptr;
  EXPECT_EQ(moert_model_load(tmp.str().c_str(), nullptr, nullptr, nullptr, &m), MOERT_ERR_IO);
  std::string msg = moert_last_error();
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a FIFO"), std::string::npos) << msg;
  EXPECT_EQ(m, nullptr);
  moert_tokenizer* t = nullptr;
  EXPECT_EQ(moert_tokenizer_load((tmp.path() / "tokenizer.json").c_str(), nullptr, &t), MOERT_ERR_IO);
  msg = moert_last_error();
  EXPECT_NE(msg.find("a FIFO"), std::string::npos) << msg;
  // A tokenizer_config.json that is a symlink loop is an I/O error too, not MOERT_ERR_INTERNAL.
  fs::remove(tmp.path() / "tokenizer.json");
  fs::copy_file(fs::path(MOERT_TEST_DATA) / "tokenizer-deepseek-v3" / "tokenizer.json",
                tmp.path() / "tokenizer.json");
  make_symlink_loop(tmp.path() / "tokenizer_config.json");
  EXPECT_EQ(moert_tokenizer_load((tmp.path() / "tokenizer.json").c_str(), nullptr, &t), MOERT_ERR_IO);
  msg = moert_last_error();
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
  EXPECT_EQ(t, nullptr);
}

// check_weights 0 skips the scan: the poisoned checkpoint loads, and then the run-time check catches the
// NaN logits it produces: the request ends with MOERT_FINISH_ERROR and a message, never empty text with
// success.
TEST(CapiFault, NonFiniteLogitsEndTheRequestWithAnError) {
  TempDir tmp;
  copy_checkpoint(kData / "tiny-v3-bf16", tmp.path());
  poke_tensor(tmp.path(), "model.norm.weight", 0, std::string("\xc0\x7f", 2));  // NaN
  moert_model* m = nullptr;
  ASSERT_EQ(moert_model_load(tmp.str().c_str(), nullptr, nullptr, nullptr, &m), MOERT_ERR_FORMAT);
  moert_options* o = small_options();
  ASSERT_EQ(moert_options_set_int(o, "check_weights", 0), MOERT_OK);
  ASSERT_EQ(moert_model_load(tmp.str().c_str(), o, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_options_free(o);
  const int32_t prompt[3] = {1, 2, 3};
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(m, prompt, 3, nullptr, &s), MOERT_OK) << moert_last_error();
  int32_t token = 0, finish = 0;
  ASSERT_EQ(moert_stream_next(s, -1, &token, &finish), MOERT_OK);
  EXPECT_EQ(finish, MOERT_FINISH_ERROR);
  EXPECT_EQ(token, -1);
  char err[512];
  size_t need = 0;
  ASSERT_EQ(moert_stream_error(s, err, sizeof err, &need), MOERT_OK);
  EXPECT_NE(std::string(err).find("non-finite logit"), std::string::npos) << err;
  int64_t generated = -1;
  ASSERT_EQ(moert_stream_usage(s, nullptr, &generated, nullptr, nullptr), MOERT_OK);
  EXPECT_EQ(generated, 0);
  moert_stream_free(s);
  moert_model_free(m);
}

// A key of another call's scope is an error naming it, not silently ignored.
TEST(CapiFault, OptionOfTheWrongScopeIsNamed) {
  moert_options* o = nullptr;
  ASSERT_EQ(moert_options_create(&o), MOERT_OK);
  ASSERT_EQ(moert_options_set_float(o, "temperature", 0.5), MOERT_OK);
  moert_model* m = nullptr;
  EXPECT_EQ(moert_model_load((kData / "tiny-v3-bf16").string().c_str(), o, nullptr, nullptr, &m),
            MOERT_ERR_INVALID_ARGUMENT);
  std::string msg = moert_last_error();
  EXPECT_NE(msg.find("'temperature' is a generation option"), std::string::npos) << msg;
  EXPECT_EQ(m, nullptr);
  moert_options_free(o);

  ASSERT_EQ(moert_options_create(&o), MOERT_OK);
  ASSERT_EQ(moert_options_set_int(o, "threads", 1), MOERT_OK);
  ASSERT_EQ(moert_model_load((kData / "tiny-v3-bf16").string().c_str(), o, nullptr, nullptr, &m), MOERT_OK);
  const int32_t prompt[2] = {1, 2};
  moert_stream* s = nullptr;
  EXPECT_EQ(moert_generate_tokens(m, prompt, 2, o, &s), MOERT_ERR_INVALID_ARGUMENT);
  msg = moert_last_error();
  EXPECT_NE(msg.find("'threads' is a model load option"), std::string::npos) << msg;
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(moert_checkpoint_write_random("/nonexistent-moert-dir/x", o), MOERT_ERR_INVALID_ARGUMENT);
  msg = moert_last_error();
  EXPECT_NE(msg.find("'threads' is a model load option"), std::string::npos) << msg;
  moert_options_free(o);
  ASSERT_EQ(moert_options_create(&o), MOERT_OK);
  ASSERT_EQ(moert_options_set_int(o, "model.hidden", 64), MOERT_OK);
  EXPECT_EQ(moert_generate_tokens(m, prompt, 2, o, &s), MOERT_ERR_INVALID_ARGUMENT);
  msg = moert_last_error();
  EXPECT_NE(msg.find("'model.hidden' is a checkpoint shape option"), std::string::npos) << msg;
  moert_options_free(o);
  moert_model_free(m);
}

// Past the sequence's end there is nothing to truncate to: an error, and the session is unchanged.
TEST(CapiFault, TruncateBeyondLengthIsAnError) {
  moert_model* m = nullptr;
  moert_options* o = small_options();
  ASSERT_EQ(moert_model_load((kData / "tiny-v3-bf16").string().c_str(), o, nullptr, nullptr, &m), MOERT_OK);
  moert_options_free(o);
  int64_t vocab = 0;
  ASSERT_EQ(moert_model_info_int(m, "vocab_size", &vocab), MOERT_OK);
  moert_session* s = nullptr;
  ASSERT_EQ(moert_session_create(m, &s), MOERT_OK);
  const int32_t tokens[3] = {1, 2, 3};
  std::vector<float> logits(static_cast<size_t>(vocab));
  ASSERT_EQ(moert_session_eval(s, tokens, 3, 0, logits.data(), logits.size()), MOERT_OK);
  EXPECT_EQ(moert_session_truncate(s, 4), MOERT_ERR_INVALID_ARGUMENT);
  const std::string msg = moert_last_error();
  EXPECT_NE(msg.find("the sequence has 3"), std::string::npos) << msg;
  int64_t len = 0;
  ASSERT_EQ(moert_session_length(s, &len), MOERT_OK);
  EXPECT_EQ(len, 3);
  EXPECT_EQ(moert_session_truncate(s, 3), MOERT_OK);
  EXPECT_EQ(moert_session_truncate(s, 1), MOERT_OK);
  ASSERT_EQ(moert_session_length(s, &len), MOERT_OK);
  EXPECT_EQ(len, 1);
  EXPECT_EQ(moert_session_truncate(s, 2), MOERT_ERR_INVALID_ARGUMENT);
  moert_session_free(s);
  moert_model_free(m);
}

// An id outside the vocabulary is named, not dropped with MOERT_OK.
TEST(CapiFault, DetokenizeUnknownIdIsNamed) {
  moert_tokenizer* t = nullptr;
  ASSERT_EQ(
      moert_tokenizer_load((fs::path(MOERT_TEST_DATA) / "tokenizer-deepseek-v3" / "tokenizer.json").c_str(),
                           nullptr, &t),
      MOERT_OK);
  char buf[64];
  size_t need = 0;
  for (int32_t bad : {129280, -1, 2147483647}) {
    const int32_t ids[3] = {19923, bad, 3};
    EXPECT_EQ(moert_detokenize(t, ids, 3, 0, buf, sizeof buf, &need), MOERT_ERR_INVALID_ARGUMENT);
    const std::string msg = moert_last_error();
    EXPECT_NE(msg.find("token id " + std::to_string(bad) + " at position 1"), std::string::npos) << msg;
  }
  const int32_t good[2] = {19923, 3};
  EXPECT_EQ(moert_detokenize(t, good, 2, 0, buf, sizeof buf, &need), MOERT_OK) << moert_last_error();
  moert_tokenizer_free(t);
}

// moert_checkpoint_write_random_v2 reports progress per layer on the calling thread and can be cancelled.
TEST(CapiFault, RandomCheckpointProgressAndCancel) {
  TempDir tmp;
  moert_options* o = nullptr;
  ASSERT_EQ(moert_options_create(&o), MOERT_OK);
  for (auto [k, v] : {std::pair<const char*, int64_t>{"model.vocab", 256},
                      {"model.hidden", 64},
                      {"model.intermediate", 128},
                      {"model.moe_intermediate", 32},
                      {"model.layers", 2},
                      {"model.heads", 2},
                      {"model.q_lora", 0},
                      {"model.kv_lora", 32},
                      {"model.experts", 8},
                      {"model.groups", 2},
                      {"model.topk_groups", 1},
                      {"model.top_k", 2}})
    ASSERT_EQ(moert_options_set_int(o, k, v), MOERT_OK) << k;
  struct Seen {
    std::vector<std::pair<double, std::string>> calls;
    std::thread::id thread;
    bool cancel = false;
  } seen;
  auto cb = [](void* user, double f, const char* stage) -> int32_t {
    auto* s = static_cast<Seen*>(user);
    EXPECT_EQ(std::this_thread::get_id(), s->thread);
    s->calls.emplace_back(f, stage);
    return s->cancel && s->calls.size() == 2 ? 1 : 0;
  };
  seen.thread = std::this_thread::get_id();
  ASSERT_EQ(moert_checkpoint_write_random_v2((tmp.path() / "a").c_str(), o, cb, &seen), MOERT_OK)
      << moert_last_error();
  ASSERT_GE(seen.calls.size(), 4u);
  EXPECT_EQ(seen.calls.back().first, 1.0);
  bool layer2 = false;
  for (size_t i = 1; i < seen.calls.size(); ++i) {
    EXPECT_GE(seen.calls[i].first, seen.calls[i - 1].first);
    layer2 |= seen.calls[i].second.find("layer 2 of 2") != std::string::npos;
  }
  EXPECT_TRUE(layer2);
  seen = Seen{{}, std::this_thread::get_id(), true};
  EXPECT_EQ(moert_checkpoint_write_random_v2((tmp.path() / "b").c_str(), o, cb, &seen), MOERT_ERR_CANCELLED);
  EXPECT_EQ(seen.calls.size(), 2u);
  moert_options_free(o);
}

// moert_checkpoint_quantize through the C API: progress on the calling thread up to 1, a result that
// loads on the CPU and is UNSUPPORTED (naming the format) on device cuda; bad arguments and options named.
TEST(CapiFault, QuantizeCheckpoint) {
  TempDir tmp;
  const std::string src = (kData / "tiny-v3-fp8").string(), out = (tmp.path() / "q4").string();
  moert_options* o = nullptr;
  ASSERT_EQ(moert_options_create(&o), MOERT_OK);
  ASSERT_EQ(moert_options_set_int(o, "quantize.group_size", 64), MOERT_OK);
  std::vector<double> fractions;
  auto cb = [](void* user, double f, const char*) -> int32_t {
    static_cast<std::vector<double>*>(user)->push_back(f);
    return 0;
  };
  ASSERT_EQ(moert_checkpoint_quantize(src.c_str(), out.c_str(), o, cb, &fractions), MOERT_OK)
      << moert_last_error();
  ASSERT_FALSE(fractions.empty());
  EXPECT_EQ(fractions.back(), 1.0);
  moert_model* m = nullptr;
  ASSERT_EQ(moert_model_load(out.c_str(), nullptr, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_model_free(m);
  moert_options* cuda = nullptr;
  ASSERT_EQ(moert_options_create(&cuda), MOERT_OK);
  ASSERT_EQ(moert_options_set_string(cuda, "device", "cuda"), MOERT_OK);
  m = nullptr;
  EXPECT_EQ(moert_model_load(out.c_str(), cuda, nullptr, nullptr, &m), MOERT_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(moert_last_error()).find("moert_q4"), std::string::npos) << moert_last_error();
  EXPECT_EQ(m, nullptr);
  moert_options_free(cuda);

  EXPECT_EQ(moert_checkpoint_quantize(nullptr, out.c_str(), nullptr, nullptr, nullptr),
            MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("model_dir"), std::string::npos);
  EXPECT_EQ(moert_checkpoint_quantize(src.c_str(), src.c_str(), nullptr, nullptr, nullptr),
            MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_options_set_int(o, "quantize.group_size", 48), MOERT_ERR_INVALID_ARGUMENT);  // not a size
  EXPECT_NE(std::string(moert_last_error()).find("quantize.group_size"), std::string::npos)
      << moert_last_error();
  EXPECT_EQ(moert_options_set_int(o, "threads", 2), MOERT_OK);  // a load option: the wrong scope here
  EXPECT_EQ(moert_checkpoint_quantize(src.c_str(), (tmp.path() / "s").c_str(), o, nullptr, nullptr),
            MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("threads"), std::string::npos) << moert_last_error();
  moert_options_free(o);
}

}  // namespace
