// The generation and tokenizer C API on the shipped moert-tiny-coder, linked only against libmoert:
// transformers' greedy continuations reproduced from ids and from text, text pieces, 8 concurrent
// streams, cancel from another thread, stop strings, seeded sampling, usage, and every error path.
#include <gtest/gtest.h>

#include <atomic>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "capi_test_model.h"
#include "moert/moert.h"

namespace {

const std::string kModel = MOERT_DEFAULT_MODEL_DIR;

// The reference file, read with a few lines of code (the test sees only the public API of moert).
std::vector<std::vector<int32_t>> reference(const char* part) {
  std::ifstream f(kModel + "/reference.safetensors", std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  auto h = nlohmann::json::parse(b.begin() + 8, b.begin() + 8 + static_cast<long>(n));
  std::vector<std::vector<int32_t>> out;
  for (int p = 0; h.contains("prompt" + std::to_string(p) + part); ++p) {
    auto e = h["prompt" + std::to_string(p) + part];
    const size_t s = e["data_offsets"][0], t = e["data_offsets"][1];
    std::vector<int32_t> v((t - s) / 4);
    std::memcpy(v.data(), b.data() + 8 + n + s, t - s);
    out.push_back(v);
  }
  return out;
}

const char* kPrompts[] = {"def fibonacci(n):\n", "import numpy as np\n\n\ndef normalize(x):\n",
                          "class Stack:\n    def __init__(self):\n",
                          "# Read a CSV file and print the sum of each column\n"};

struct Model {
  moert_model* m;
  Model() : m(moert_test::load_model(kModel)) {}
  ~Model() { moert_model_free(m); }
};

moert_options* greedy(int64_t n) {
  moert_options* o = nullptr;
  moert_options_create(&o);
  moert_options_set_int(o, "max_tokens", n);
  moert_options_set_int(o, "ignore_eos", 1);
  moert_options_set_float(o, "temperature", 0);  // the shipped model's generation_config.json samples
  return o;
}

struct Out {
  std::vector<int32_t> tokens;
  std::string text;
  int32_t finish = 0;
};

Out drain(moert_stream* s) {
  Out o;
  for (;;) {
    int32_t tok = 0, fin = 0;
    EXPECT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK) << moert_last_error();
    size_t need = 0;
    EXPECT_EQ(moert_stream_text(s, nullptr, 0, &need), MOERT_OK);
    std::vector<char> buf(need);
    EXPECT_EQ(moert_stream_text(s, buf.data(), buf.size(), &need), MOERT_OK);
    o.text += buf.data();
    if (tok >= 0) o.tokens.push_back(tok);
    if (fin != MOERT_FINISH_NONE) {
      o.finish = fin;
      return o;
    }
  }
}

std::string detok(moert_tokenizer* t, const std::vector<int32_t>& ids) {
  size_t need = 0;
  EXPECT_EQ(moert_detokenize(t, ids.data(), ids.size(), 1, nullptr, 0, &need), MOERT_OK);
  std::vector<char> buf(need);
  EXPECT_EQ(moert_detokenize(t, ids.data(), ids.size(), 1, buf.data(), buf.size(), &need), MOERT_OK);
  return buf.data();
}

// The CPU kernels' paths (moert_model_info_int's cpu_* keys) against what /proc/cpuinfo says the CPU has:
// no flag, no path (AMX, VNNI, AVX-512); all AVX-512 flags, the AVX-512 kernels (and VNNI's int8 q4) unless
// lowered by the environment; batch-invariant mode takes no matrix path.
TEST(CapiModel, ReportsTheCpuKernelPaths) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string flags, line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos; };
  for (int invariant : {0, 1}) {
    moert_options* o = nullptr;
    moert_options_create(&o);
    moert_options_set_int(o, "batch_invariant", invariant);
    moert_model* m = nullptr;
    ASSERT_EQ(moert_model_load(kModel.c_str(), o, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
    moert_options_free(o);
    std::map<std::string, int64_t> v;
    for (const char* k : {"cpu_isa", "cpu_amx_bf16", "cpu_amx_int8", "cpu_q4_int8"})
      ASSERT_EQ(moert_model_info_int(m, k, &v[k]), MOERT_OK) << k << ": " << moert_last_error();
    std::printf("batch_invariant %d: cpu_isa %lld cpu_amx_bf16 %lld cpu_amx_int8 %lld cpu_q4_int8 %lld\n",
                invariant, static_cast<long long>(v["cpu_isa"]), static_cast<long long>(v["cpu_amx_bf16"]),
                static_cast<long long>(v["cpu_amx_int8"]), static_cast<long long>(v["cpu_q4_int8"]));
    EXPECT_TRUE(v["cpu_isa"] >= 0 && v["cpu_isa"] <= 2);
    // and the positive side: AVX-512 is taken where the CPU has all the kernels need (unless lowered), and
    // int8 q4 activations where it also has VNNI (unless turned off)
    const bool all512 =
        has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq") && has("fma") && has("f16c");
    if (all512 && !std::getenv("MOERT_CPU_ISA")) {
      EXPECT_EQ(v["cpu_isa"], 2);
      if (has("avx512_vnni") && !std::getenv("MOERT_Q4_INT8") && !invariant) {
        EXPECT_EQ(v["cpu_q4_int8"], 1);
      }
    }
    if (!flags.empty() && !has("avx512f")) {
      EXPECT_LT(v["cpu_isa"], 2);
    }
    for (const char* k : {"cpu_amx_bf16", "cpu_amx_int8", "cpu_q4_int8"})
      EXPECT_TRUE(v[k] == 0 || v[k] == 1) << k;
    const std::pair<const char*, const char*> needs[] = {
        {"cpu_amx_bf16", "amx_bf16"}, {"cpu_amx_int8", "amx_int8"}, {"cpu_q4_int8", "avx512_vnni"}};
    for (const auto& [key, flag] : needs)
      if (!flags.empty() && !has(flag)) {
        EXPECT_EQ(v[key], 0) << key << " without " << flag;
      }
    if (invariant) {
      for (const char* k : {"cpu_amx_bf16", "cpu_amx_int8", "cpu_q4_int8"}) EXPECT_EQ(v[k], 0) << k;
    }
    moert_model_free(m);
  }
}

TEST(CapiGenerate, GreedyFromIdsAndTextMatchesReference) {
  Model model;
  auto ids = reference(".ids"), want = reference(".greedy");
  ASSERT_EQ(ids.size(), 4u);
  moert_tokenizer* tok = nullptr;
  ASSERT_EQ(moert_model_tokenizer(model.m, &tok), MOERT_OK);
  for (size_t i = 0; i < ids.size(); ++i) {
    // The tokenizer gives the reference prompt ids (BOS as tokenizer_config.json says).
    size_t n = 0;
    ASSERT_EQ(moert_tokenize(tok, kPrompts[i], std::strlen(kPrompts[i]), -1, 1, nullptr, 0, &n), MOERT_OK);
    std::vector<int32_t> got(n);
    ASSERT_EQ(moert_tokenize(tok, kPrompts[i], std::strlen(kPrompts[i]), -1, 1, got.data(), n, &n), MOERT_OK);
    EXPECT_EQ(got, ids[i]) << "prompt " << i;

    moert_options* g = greedy(static_cast<int64_t>(want[i].size()));
    moert_stream* s = nullptr;
    ASSERT_EQ(moert_generate_tokens(model.m, ids[i].data(), ids[i].size(), g, &s), MOERT_OK);
    Out a = drain(s);
    EXPECT_EQ(a.tokens, want[i]);
    EXPECT_EQ(a.finish, MOERT_FINISH_LENGTH);
    EXPECT_EQ(a.text, detok(tok, want[i])) << "the pieces concatenate to the decoded text";
    int64_t pt = 0, gt = 0;
    double ttft = -1, tps = -1;
    EXPECT_EQ(moert_stream_usage(s, &pt, &gt, &ttft, &tps), MOERT_OK);
    EXPECT_EQ(pt, static_cast<int64_t>(ids[i].size()));
    EXPECT_EQ(gt, static_cast<int64_t>(want[i].size()));
    EXPECT_GT(ttft, 0.0);
    EXPECT_GT(tps, 0.0);
    // After the end, next keeps returning the final event.
    int32_t tk = 0, fin = 0;
    EXPECT_EQ(moert_stream_next(s, 0, &tk, &fin), MOERT_OK);
    EXPECT_EQ(tk, -1);
    EXPECT_EQ(fin, MOERT_FINISH_LENGTH);
    moert_stream_free(s);

    ASSERT_EQ(moert_generate_text(model.m, kPrompts[i], g, &s), MOERT_OK);
    EXPECT_EQ(drain(s).tokens, want[i]);
    moert_stream_free(s);
    moert_options_free(g);
  }
  moert_tokenizer_free(tok);
}

TEST(CapiGenerate, EightThreadsAtOnceGiveTheSameTokens) {
  Model model;
  auto ids = reference(".ids"), want = reference(".greedy");
  std::vector<std::vector<int32_t>> got(8);
  std::vector<std::thread> th;
  for (int t = 0; t < 8; ++t)
    th.emplace_back([&, t] {
      moert_options* g = greedy(48);
      moert_stream* s = nullptr;
      if (moert_generate_tokens(model.m, ids[t % 4].data(), ids[t % 4].size(), g, &s) == MOERT_OK)
        got[t] = drain(s).tokens;
      moert_stream_free(s);
      moert_options_free(g);
    });
  for (auto& x : th) x.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(got[t], want[t % 4]) << t;
}

// Sessions run through the engine's step: four sessions greedy-decoding from four threads while two
// generation streams run, all batched into shared steps, still reproduce the reference continuations.
TEST(CapiGenerate, SessionsBatchWithStreamsAndKeepTheirTokens) {
  Model model;
  auto ids = reference(".ids"), want = reference(".greedy");
  std::vector<std::vector<int32_t>> got(6);
  std::vector<std::thread> th;
  for (int t = 0; t < 2; ++t)
    th.emplace_back([&, t] {
      moert_options* g = greedy(24);
      moert_stream* s = nullptr;
      if (moert_generate_tokens(model.m, ids[t].data(), ids[t].size(), g, &s) == MOERT_OK)
        got[4 + t] = drain(s).tokens;
      moert_stream_free(s);
      moert_options_free(g);
    });
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      moert_session* ses = nullptr;
      ASSERT_EQ(moert_session_create(model.m, &ses), MOERT_OK) << moert_last_error();
      int64_t vocab = 0;
      ASSERT_EQ(moert_model_info_int(model.m, "vocab_size", &vocab), MOERT_OK) << moert_last_error();
      std::vector<float> l(static_cast<size_t>(vocab));
      std::vector<int32_t> in = ids[t];
      for (int k = 0; k < 24; ++k) {
        ASSERT_EQ(moert_session_eval(ses, in.data(), in.size(), 0, l.data(), l.size()), MOERT_OK)
            << moert_last_error();
        int32_t best = 0;
        for (int64_t j = 1; j < vocab; ++j)
          if (l[j] > l[best]) best = static_cast<int32_t>(j);
        got[t].push_back(best);
        in = {best};
      }
      moert_session_free(ses);
    });
  for (auto& x : th) x.join();
  for (int t = 0; t < 4; ++t) {
    const std::vector<int32_t> w(want[t].begin(), want[t].begin() + 24);
    EXPECT_EQ(got[t], w) << "session " << t;
  }
  for (int t = 0; t < 2; ++t) {
    const std::vector<int32_t> w(want[t].begin(), want[t].begin() + 24);
    EXPECT_EQ(got[4 + t], w) << "stream " << t;
  }
}

TEST(CapiGenerate, CancelFromAnotherThreadAndStops) {
  Model model;
  auto ids = reference(".ids"), want = reference(".greedy");
  moert_options* g = greedy(1000000);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(model.m, ids[0].data(), ids[0].size(), g, &s), MOERT_OK);
  int32_t tok = 0, fin = 0;
  ASSERT_EQ(moert_stream_next(s, 60000, &tok, &fin), MOERT_OK);
  std::thread([&] { EXPECT_EQ(moert_stream_cancel(s), MOERT_OK); }).join();
  EXPECT_EQ(drain(s).finish, MOERT_FINISH_CANCELLED);
  moert_stream_free(s);
  moert_options_free(g);

  // A stop string ends the text before it; the string itself is not returned.
  moert_tokenizer* t = nullptr;
  ASSERT_EQ(moert_model_tokenizer(model.m, &t), MOERT_OK);
  const std::string full = detok(t, want[0]);
  const std::string stop = full.substr(6, 5);
  g = greedy(48);
  ASSERT_EQ(moert_options_add_string(g, "stop", stop.c_str()), MOERT_OK);
  ASSERT_EQ(moert_generate_tokens(model.m, ids[0].data(), ids[0].size(), g, &s), MOERT_OK);
  Out o = drain(s);
  EXPECT_EQ(o.finish, MOERT_FINISH_STOP);
  EXPECT_EQ(o.text, full.substr(0, full.find(stop)));
  moert_stream_free(s);
  moert_options_free(g);
  moert_tokenizer_free(t);
}

TEST(CapiGenerate, SeededSamplingReproducible) {
  Model model;
  auto ids = reference(".ids");
  auto run = [&](int64_t seed) {
    moert_options* g = nullptr;
    moert_options_create(&g);
    moert_options_set_int(g, "max_tokens", 24);
    moert_options_set_float(g, "temperature", 0.8);
    moert_options_set_float(g, "top_p", 0.9);
    moert_options_set_float(g, "min_p", 0.02);
    moert_options_set_int(g, "seed", seed);
    moert_options_set_int(g, "ignore_eos", 1);
    moert_stream* s = nullptr;
    EXPECT_EQ(moert_generate_tokens(model.m, ids[1].data(), ids[1].size(), g, &s), MOERT_OK);
    auto out = drain(s).tokens;
    moert_stream_free(s);
    moert_options_free(g);
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

int64_t stream_info(moert_stream* s, const char* key) {
  int64_t v = -1;
  EXPECT_EQ(moert_stream_info_int(s, key, &v), MOERT_OK) << moert_last_error();
  return v;
}

// Unset sampling keys come from the checkpoint's generation_config.json (temperature 0.7, top_p 0.95):
// a seeded request with no options samples exactly as one that spells those values out.
TEST(CapiGenerate, GenerationConfigSuppliesTheDefaults) {
  Model model;
  auto ids = reference(".ids"), want = reference(".greedy");
  auto run = [&](double temperature, double top_p) {
    moert_options* g = nullptr;
    moert_options_create(&g);
    moert_options_set_int(g, "max_tokens", 32);
    moert_options_set_int(g, "ignore_eos", 1);
    moert_options_set_int(g, "seed", 5);
    if (temperature >= 0) moert_options_set_float(g, "temperature", temperature);
    if (top_p >= 0) moert_options_set_float(g, "top_p", top_p);
    moert_stream* s = nullptr;
    EXPECT_EQ(moert_generate_tokens(model.m, ids[0].data(), ids[0].size(), g, &s), MOERT_OK);
    EXPECT_EQ(stream_info(s, "sampled"), temperature == 0 ? 0 : 1);
    EXPECT_EQ(stream_info(s, "seed"), 5);
    auto out = drain(s).tokens;
    moert_stream_free(s);
    moert_options_free(g);
    return out;
  };
  const auto by_default = run(-1, -1);
  EXPECT_EQ(by_default, run(0.7, 0.95));
  EXPECT_NE(by_default, run(0.7, 1.0));  // top_p 0.95 did apply
  EXPECT_EQ(run(0, -1), std::vector<int32_t>(want[0].begin(), want[0].begin() + 32));
}

// A sampled request without a seed draws a fresh one, reported so the run can be repeated; greedy has 0.
TEST(CapiGenerate, UnseededSamplingDrawsAReportedSeed) {
  Model model;
  auto ids = reference(".ids");
  auto run = [&](int64_t seed, int64_t* used) {
    moert_options* g = nullptr;
    moert_options_create(&g);
    moert_options_set_int(g, "max_tokens", 24);
    moert_options_set_int(g, "ignore_eos", 1);
    moert_options_set_float(g, "temperature", 1.0);
    if (seed >= 0) moert_options_set_int(g, "seed", seed);
    moert_stream* s = nullptr;
    EXPECT_EQ(moert_generate_tokens(model.m, ids[1].data(), ids[1].size(), g, &s), MOERT_OK);
    *used = stream_info(s, "seed");
    auto out = drain(s).tokens;
    moert_stream_free(s);
    moert_options_free(g);
    return out;
  };
  int64_t a = 0, b = 0, again = 0;
  const auto out_a = run(-1, &a), out_b = run(-1, &b);
  EXPECT_NE(a, b);
  EXPECT_GE(a, 0);
  EXPECT_EQ(run(a, &again), out_a);
  EXPECT_EQ(again, a);
  EXPECT_EQ(run(b, &again), out_b);
  moert_options* g = greedy(2);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(model.m, ids[1].data(), ids[1].size(), g, &s), MOERT_OK);
  EXPECT_EQ(stream_info(s, "seed"), 0);
  EXPECT_EQ(stream_info(s, "sampled"), 0);
  int64_t v = 0;
  EXPECT_EQ(moert_stream_info_int(s, "bogus", &v), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("bogus"), std::string::npos);
  EXPECT_EQ(moert_stream_info_int(nullptr, "seed", &v), MOERT_ERR_INVALID_ARGUMENT);
  drain(s);
  moert_stream_free(s);
  moert_options_free(g);
}

// moert_stream_error may be read from another thread while the engine fails the request (here: a KV
// budget too small for any page); under ThreadSanitizer (scripts/tsan.sh) this is the race check.
TEST(CapiGenerate, StreamErrorIsRaceFreeWhileTheRequestFails) {
  moert_options* o = nullptr;
  moert_options_create(&o);
  moert_options_set_int(o, "threads", 1);
  moert_options_set_int(o, "kv_cache_bytes", 1 << 16);
  moert_model* m = nullptr;
  ASSERT_EQ(moert_model_load(kModel.c_str(), o, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_options_free(o);
  int64_t capacity = 0;
  ASSERT_EQ(moert_model_info_int(m, "kv_capacity_tokens", &capacity), MOERT_OK);
  const std::vector<int32_t> prompt(static_cast<size_t>(capacity) + 1, 5);  // more than the budget holds
  for (int round = 0; round < 20; ++round) {
    moert_stream* s = nullptr;
    moert_options* g = greedy(4);
    ASSERT_EQ(moert_generate_tokens(m, prompt.data(), prompt.size(), g, &s), MOERT_OK);
    moert_options_free(g);
    std::atomic<bool> done{false};
    std::string seen;
    std::thread reader([&] {
      char buf[512];
      size_t need = 0;
      while (!done.load()) {
        if (moert_stream_error(s, buf, sizeof buf, &need) == MOERT_OK && buf[0]) seen = buf;
      }
    });
    Out out = drain(s);
    done = true;
    reader.join();
    EXPECT_EQ(out.finish, MOERT_FINISH_ERROR);
    char buf[512];
    ASSERT_EQ(moert_stream_error(s, buf, sizeof buf, nullptr), MOERT_OK);
    EXPECT_NE(std::string(buf).find("KV"), std::string::npos) << buf;
    if (!seen.empty()) {
      EXPECT_EQ(seen, buf);
    }
    moert_stream_free(s);
  }
  moert_model_free(m);
}

TEST(CapiGenerate, ErrorsAreStatusesWithMessages) {
  Model model;
  moert_stream* s = reinterpret_cast<moert_stream*>(0x1);
  int32_t bad[] = {1, 99999};
  EXPECT_EQ(moert_generate_tokens(model.m, bad, 2, nullptr, &s), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("99999"), std::string::npos);
  EXPECT_EQ(s, reinterpret_cast<moert_stream*>(0x1));
  EXPECT_EQ(moert_generate_tokens(model.m, bad, 0, nullptr, &s), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_generate_text(nullptr, "x", nullptr, &s), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_generate_chat(model.m, "not json", nullptr, &s), MOERT_ERR_INVALID_ARGUMENT);
  moert_options* g = nullptr;
  moert_options_create(&g);
  EXPECT_EQ(moert_options_set_float(g, "temperature", -1), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_options_add_string(g, "max_tokens", "3"), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_options_add_int(g, "stop_token_ids", -4), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_options_set_float(g, "top_p", 0.5), MOERT_OK);
  moert_options_free(g);
  int32_t tok = 0, fin = 0;
  EXPECT_EQ(moert_stream_next(nullptr, 0, &tok, &fin), MOERT_ERR_INVALID_ARGUMENT);
  moert_stream_free(nullptr);
  moert_tokenizer* t = nullptr;
  EXPECT_EQ(moert_tokenizer_load("/nonexistent/tokenizer.json", nullptr, &t), MOERT_ERR_IO);
  EXPECT_EQ(t, nullptr);

  // A timeout leaves the out-parameters alone.
  int32_t one = 5;
  g = greedy(1);
  ASSERT_EQ(moert_generate_tokens(model.m, &one, 1, g, &s), MOERT_OK);
  tok = 77;
  moert_status st;
  while ((st = moert_stream_next(s, 0, &tok, &fin)) == MOERT_ERR_TIMEOUT) EXPECT_EQ(tok, 77);
  EXPECT_EQ(st, MOERT_OK);
  moert_stream_free(s);
  moert_options_free(g);
}

// A template moert has no native renderer for goes to its jinja engine; its failures come back as statuses.
TEST(CapiGenerate, ChatTemplatesBeyondTheNativeOnes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("moert_capi_jinja_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string tokenizer = (dir / "tokenizer.json").string(),
                    config = (dir / "tokenizer_config.json").string();
  fs::copy_file(kModel + "/tokenizer.json", tokenizer, fs::copy_options::overwrite_existing);
  auto cfg = nlohmann::json::parse(std::ifstream(kModel + "/tokenizer_config.json"));
  auto load_with = [&](const std::string& tmpl, moert_tokenizer** t) {
    cfg["chat_template"] = tmpl;
    std::ofstream(config) << cfg.dump();
    return moert_tokenizer_load(tokenizer.c_str(), config.c_str(), t);
  };
  auto render = [](moert_tokenizer* t, const char* msgs, std::string* out) {
    size_t need = 0;
    moert_status st = moert_apply_chat_template(t, msgs, 1, nullptr, 0, &need);
    if (st != MOERT_OK) return st;
    std::vector<char> buf(need);
    st = moert_apply_chat_template(t, msgs, 1, buf.data(), buf.size(), &need);
    *out = buf.data();
    return st;
  };
  moert_tokenizer* t = nullptr;
  ASSERT_EQ(load_with("{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}{% endfor %}"
                      "{% if tools %}[{{ tools | map(attribute='name') | join(',') }}]{% endif %}"
                      "{% if add_generation_prompt %}<assistant>{% endif %}",
                      &t),
            MOERT_OK)
      << moert_last_error();
  std::string out;
  ASSERT_EQ(
      render(t, R"({"messages":[{"role":"user","content":" hi "}],"tools":[{"name":"f"},{"name":"g"}]})",
             &out),
      MOERT_OK)
      << moert_last_error();
  EXPECT_EQ(out, "<user>hi[f,g]<assistant>");
  moert_tokenizer_free(t);

  // raise_exception: INVALID_ARGUMENT with the template's line and message.
  ASSERT_EQ(load_with("{% if messages | length == 0 %}\n{{ raise_exception('no messages') }}{% endif %}", &t),
            MOERT_OK);
  EXPECT_EQ(render(t, "[]", &out), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(), "chat template: line 2: no messages");
  moert_tokenizer_free(t);

  // A template the engine cannot parse: the tokenizer loads; applying it is UNSUPPORTED, saying why.
  ASSERT_EQ(load_with("{% extends 'base.jinja' %}", &t), MOERT_OK);
  EXPECT_EQ(render(t, "[]", &out), MOERT_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(moert_last_error()).find("'extends' tag is not supported"), std::string::npos)
      << moert_last_error();
  moert_tokenizer_free(t);
  fs::remove_all(dir);
}

TEST(CapiGenerate, ChatUsesTheTemplate) {
  Model model;
  moert_tokenizer* t = nullptr;
  ASSERT_EQ(moert_model_tokenizer(model.m, &t), MOERT_OK);
  const char* msgs = R"([{"role":"user","content":"Write a function."}])";
  size_t need = 0;
  ASSERT_EQ(moert_apply_chat_template(t, msgs, 1, nullptr, 0, &need), MOERT_OK);
  std::vector<char> buf(need);
  ASSERT_EQ(moert_apply_chat_template(t, msgs, 1, buf.data(), buf.size(), &need), MOERT_OK);
  const std::string rendered = buf.data();
  EXPECT_NE(rendered.find("Write a function."), std::string::npos);
  EXPECT_NE(rendered.find("Assistant"), std::string::npos);
  moert_options* g = greedy(8);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_chat(model.m, msgs, g, &s), MOERT_OK);
  Out o = drain(s);
  EXPECT_EQ(o.tokens.size(), 8u);
  int64_t pt = 0;
  ASSERT_EQ(moert_stream_usage(s, &pt, nullptr, nullptr, nullptr), MOERT_OK);
  size_t n = 0;
  ASSERT_EQ(moert_tokenize(t, rendered.data(), rendered.size(), 0, 1, nullptr, 0, &n), MOERT_OK);
  EXPECT_EQ(pt, static_cast<int64_t>(n));
  moert_stream_free(s);
  moert_options_free(g);
  moert_tokenizer_free(t);
}

// generation_config.json's eos_token_id ends a sequence as config.json's does (here a list naming the
// fourth greedy token of the reference continuation, so greedy decoding stops there with finish EOS).
TEST(CapiGenerate, GenerationConfigEosTokenIdsEndTheSequence) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("moert-gen-eos-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kModel))
    if (e.path().filename() != "generation_config.json")
      fs::create_symlink(fs::absolute(e.path()), dir / e.path().filename());
  const auto ids = reference(".ids")[0], want = reference(".greedy")[0];
  ASSERT_GT(want.size(), 4u);
  std::ofstream(dir / "generation_config.json")
      << R"({"temperature": 0, "eos_token_id": [1, )" << want[3] << "]}";
  moert_model* m = nullptr;
  ASSERT_EQ(moert_model_load(dir.c_str(), nullptr, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_options* g = nullptr;
  moert_options_create(&g);
  moert_options_set_int(g, "max_tokens", 16);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_tokens(m, ids.data(), ids.size(), g, &s), MOERT_OK) << moert_last_error();
  const Out out = drain(s);
  EXPECT_EQ(out.tokens, std::vector<int32_t>(want.begin(), want.begin() + 4));
  EXPECT_EQ(out.finish, MOERT_FINISH_EOS);
  moert_stream_free(s);
  // ignore_eos still runs on.
  moert_options_set_int(g, "ignore_eos", 1);
  ASSERT_EQ(moert_generate_tokens(m, ids.data(), ids.size(), g, &s), MOERT_OK);
  EXPECT_EQ(drain(s).tokens.size(), 16u);
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
  fs::remove_all(dir);
}

// A checkpoint in Moonlight's layout (model_type deepseek_v3, bf16, tiktoken.model with Moonshot's
// tokenizer_config.json): the model's tokenizer is the tiktoken one, its chat template renders Moonlight's
// turns, and generation from the chat streams text that detokenizes from its tokens.
TEST(CapiGenerate, TiktokenCheckpointChatsThroughItsTokenizer) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("moert-tiktoken-model-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  moert_options* o = nullptr;
  ASSERT_EQ(moert_options_create(&o), MOERT_OK);
  const std::pair<const char*, int64_t> shape[] = {{"model.vocab", 24256},
                                                   {"model.hidden", 256},
                                                   {"model.intermediate", 256},
                                                   {"model.moe_intermediate", 128},
                                                   {"model.layers", 2},
                                                   {"model.dense_layers", 1},
                                                   {"model.heads", 2},
                                                   {"model.q_lora", 128},
                                                   {"model.kv_lora", 128},
                                                   {"model.experts", 4},
                                                   {"model.top_k", 2},
                                                   {"model.groups", 1},
                                                   {"model.topk_groups", 1},
                                                   {"model.shared", 1},
                                                   {"model.fp8", 0}};
  for (const auto& [k, v] : shape) ASSERT_EQ(moert_options_set_int(o, k, v), MOERT_OK) << k;
  ASSERT_EQ(moert_checkpoint_write_random_v2(dir.c_str(), o, nullptr, nullptr), MOERT_OK)
      << moert_last_error();
  moert_options_free(o);
  const fs::path tk = fs::path(MOERT_TEST_DATA) / "tokenizer-tiktoken";
  for (const char* f : {"tiktoken.model", "tokenizer_config.json"}) fs::copy_file(tk / f, dir / f);

  moert_model* m = nullptr;
  ASSERT_EQ(moert_model_load(dir.c_str(), nullptr, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_tokenizer* t = nullptr;
  ASSERT_EQ(moert_model_tokenizer(m, &t), MOERT_OK) << moert_last_error();
  int64_t vocab = 0, eos = 0;
  ASSERT_EQ(moert_tokenizer_info_int(t, "vocab_size", &vocab), MOERT_OK);
  ASSERT_EQ(moert_tokenizer_info_int(t, "eos_token_id", &eos), MOERT_OK);
  EXPECT_EQ(vocab, 24256);
  EXPECT_EQ(eos, 24001);  // [EOS]
  const char* msgs = R"([{"role":"user","content":"Is 123 a prime?"}])";
  size_t need = 0;
  ASSERT_EQ(moert_apply_chat_template(t, msgs, 1, nullptr, 0, &need), MOERT_OK) << moert_last_error();
  std::vector<char> buf(need);
  ASSERT_EQ(moert_apply_chat_template(t, msgs, 1, buf.data(), buf.size(), &need), MOERT_OK);
  EXPECT_STREQ(
      buf.data(),
      "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|><|im_user|>user<|im_middle|>"
      "Is 123 a prime?<|im_end|><|im_assistant|>assistant<|im_middle|>");
  moert_options* g = greedy(6);
  moert_stream* s = nullptr;
  ASSERT_EQ(moert_generate_chat(m, msgs, g, &s), MOERT_OK) << moert_last_error();
  Out out = drain(s);
  EXPECT_EQ(out.tokens.size(), 6u);
  EXPECT_EQ(out.text, detok(t, out.tokens));
  int64_t prompt = 0;
  ASSERT_EQ(moert_stream_usage(s, &prompt, nullptr, nullptr, nullptr), MOERT_OK);
  // The prompt's ids are tiktoken's for the rendered text (chat_cases.jsonl's second row: this
  // conversation with the generation prompt, made by make_cases.mjs).
  std::ifstream cases(tk / "chat_cases.jsonl");
  std::string line;
  std::getline(cases, line);
  std::getline(cases, line);
  const auto row = nlohmann::json::parse(line);
  ASSERT_EQ(row["rendered"].get<std::string>(), buf.data());
  const auto want = row["ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> ids(want.size() + 8);
  size_t n = 0;
  ASSERT_EQ(moert_tokenize(t, buf.data(), need - 1, 0, 1, ids.data(), ids.size(), &n), MOERT_OK);
  ids.resize(n);
  EXPECT_EQ(ids, want);
  EXPECT_EQ(prompt, static_cast<int64_t>(n));
  moert_stream_free(s);
  moert_tokenizer_free(t);
  moert_model_free(m);

  // A tokenizer class moert does not know: the model still loads and runs on ids; text asks say why not.
  auto cfg = nlohmann::json::parse(std::ifstream(dir / "tokenizer_config.json"));
  cfg["auto_map"]["AutoTokenizer"][0] = "tokenization_other.OtherTokenizer";
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  ASSERT_EQ(moert_model_load(dir.c_str(), nullptr, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  EXPECT_EQ(moert_model_tokenizer(m, &t), MOERT_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(moert_last_error()).find("tokenization_other.OtherTokenizer"), std::string::npos)
      << moert_last_error();
  EXPECT_EQ(moert_generate_chat(m, msgs, g, &s), MOERT_ERR_UNSUPPORTED);
  const int32_t prompt_ids[] = {9906, 1917};
  ASSERT_EQ(moert_generate_tokens(m, prompt_ids, 2, g, &s), MOERT_OK) << moert_last_error();
  EXPECT_EQ(drain(s).tokens.size(), 6u);
  moert_stream_free(s);
  moert_options_free(g);
  moert_model_free(m);
  fs::remove_all(dir);
}

}  // namespace

namespace {

// The fixtures' greedy tokens (transformers' decode_inputs: each the argmax after the previous) come out
// of moert_generate_tokens with greedy sampling.
std::map<std::string, std::vector<int32_t>> read_ints(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  auto h = nlohmann::json::parse(b.begin() + 8, b.begin() + 8 + static_cast<long>(n));
  std::map<std::string, std::vector<int32_t>> out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__" || it.value()["dtype"] != "I32") continue;
    const size_t s = it.value()["data_offsets"][0], t = it.value()["data_offsets"][1];
    std::vector<int32_t> v((t - s) / 4);
    std::memcpy(v.data(), b.data() + 8 + n + s, t - s);
    out[it.key()] = v;
  }
  return out;
}

TEST(CapiGenerate, FixtureGreedyTokens) {
  for (const char* name : {"tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16", "tiny-v2lite-bf16"}) {
    const std::string dir = std::string(MOERT_TEST_DATA) + "/" + name;
    moert_model* m = nullptr;
    ASSERT_EQ(moert_model_load(dir.c_str(), nullptr, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
    auto ref = read_ints(dir + "/reference.safetensors");
    int cases = 0;
    for (int c = 0; ref.count("case" + std::to_string(c) + ".prompt"); ++c, ++cases) {
      const auto& prompt = ref["case" + std::to_string(c) + ".prompt"];
      const auto& want = ref["case" + std::to_string(c) + ".decode_inputs"];
      moert_options* g = greedy(static_cast<int64_t>(want.size()));
      moert_stream* s = nullptr;
      ASSERT_EQ(moert_generate_tokens(m, prompt.data(), prompt.size(), g, &s), MOERT_OK)
          << moert_last_error();
      EXPECT_EQ(drain(s).tokens, want) << name << " case " << c;
      moert_stream_free(s);
      moert_options_free(g);
    }
    EXPECT_GE(cases, 2) << name;
    moert_model_free(m);
  }
}

}  // namespace
