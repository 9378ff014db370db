// Broken checkpoints through the C++ layer: load_model_config + WeightStore + DeepseekNetwork (CPU backend)
// must end in moert::Error with the right code and a message naming the file and the tensor, never a
// crash. The same catalogue runs through the C API in capi_fault_test.cpp.
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "config/generation_config.h"
#include "config/model_config.h"
#include "corruptions.h"
#include "model/deepseek_network.h"
#include "util/error.h"
#include "weights/layer_check.h"
#include "weights/weight_scan.h"
#include "weights/weight_store.h"

namespace {

using namespace moert_test;

const fs::path kData = MOERT_TEST_DATA;

// What moert_model_load does up to the KV cache.
void load_cpp(const std::string& dir) {
  moert::ModelConfig cfg = moert::load_model_config(dir);
  auto store = std::make_shared<moert::WeightStore>(dir);
  moert::check_layer_count(*store, cfg.num_hidden_layers, cfg.num_nextn_predict_layers, dir + "/config.json");
  moert::scan_weights(*store, 2);
  moert::load_generation_defaults(dir);
  auto backend = moert::make_cpu_backend(1);
  moert::DeepseekNetwork model(cfg, store, *backend, moert::ModelOptions{});
}

class CheckpointFault : public ::testing::TestWithParam<Corruption> {};

TEST_P(CheckpointFault, FailsWithErrorNamingTheCulprit) {
  const Corruption& c = GetParam();
  TempDir tmp;
  copy_checkpoint(kData / c.fixture, tmp.path());
  c.apply(tmp.path());
  try {
    load_cpp(tmp.str());
    FAIL() << c.name << ": the broken checkpoint loaded";
  } catch (const moert::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(static_cast<int>(e.code()), c.code) << msg;
    for (const auto& want : c.expect)
      EXPECT_NE(msg.find(expand(want, tmp.str())), std::string::npos)
          << "message lacks '" << expand(want, tmp.str()) << "': " << msg;
  } catch (const std::exception& e) {
    FAIL() << c.name << ": not a moert::Error: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(All, CheckpointFault, ::testing::ValuesIn(corruptions()),
                         [](const ::testing::TestParamInfo<Corruption>& i) {
                           std::string n = i.param.name;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The pristine copies load: the corruptions above are what breaks them, not the copying.
TEST(CheckpointFault, PristineCopiesLoad) {
  for (const char* fx : {"tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16", "tiny-v2lite-bf16"}) {
    TempDir tmp;
    copy_checkpoint(kData / fx, tmp.path());
    EXPECT_NO_THROW(load_cpp(tmp.str())) << fx;
  }
}

// A checkpoint rebuilt by our own writer (same tensors, re-laid out) loads: the helpers are faithful.
TEST(CheckpointFault, RebuiltShardsLoad) {
  TempDir tmp;
  copy_checkpoint(kData / "tiny-v3-fp8", tmp.path());
  for (const char* s : {kShard1, kShard2}) {
    StTensors ts = st_read(tmp.path() / s);
    std::reverse(ts.begin(), ts.end());
    write_bytes(tmp.path() / s, st_build(ts, /*metadata=*/false));
  }
  EXPECT_NO_THROW(load_cpp(tmp.str()));
}

// WeightStore::require directly: dtype, shape and absence each name the file and the tensor.
TEST(WeightStoreFault, RequireNamesFileAndTensor) {
  moert::WeightStore store((kData / "tiny-v3-bf16").string());
  const std::string name = "model.norm.weight";
  const std::string file = store.file_of(name);
  EXPECT_NE(file.find(kShard2), std::string::npos);
  try {
    store.require(name, {moert::DType::kF32}, {256});
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kFormat);
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'" + name + "' has dtype BF16, expected F32"), std::string::npos)
        << e.what();
  }
  try {
    store.require(name, {moert::DType::kBF16}, {16, 16});
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kFormat);
    EXPECT_NE(std::string(e.what()).find("has shape [256], expected [16, 16]"), std::string::npos)
        << e.what();
  }
  try {
    store.require("model.nothing.weight", {moert::DType::kBF16}, {1});
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kFormat);
    EXPECT_NE(std::string(e.what()).find("'model.nothing.weight'"), std::string::npos) << e.what();
  }
}

TEST(WeightStoreFault, MissingDirectory) {
  try {
    moert::WeightStore store("/nonexistent/moert/model");
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/moert/model"), std::string::npos);
  }
}

// A single-file checkpoint (model.safetensors, no index) is read too, and its faults are caught the same way.
TEST(WeightStoreFault, SingleFileCheckpoint) {
  TempDir tmp;
  StTensors ts = st_read(kData / "tiny-v3-bf16" / kShard1);
  StTensors ts2 = st_read(kData / "tiny-v3-bf16" / kShard2);
  ts.insert(ts.end(), ts2.begin(), ts2.end());
  fs::copy_file(kData / "tiny-v3-bf16" / "config.json", tmp.path() / "config.json");
  write_bytes(tmp.path() / "model.safetensors", st_build(ts));
  EXPECT_NO_THROW(load_cpp(tmp.str()));
  st_find(ts, "model.norm.weight")->shape = {512};
  write_bytes(tmp.path() / "model.safetensors", st_build(ts));
  try {
    load_cpp(tmp.str());
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kFormat);
    EXPECT_NE(std::string(e.what()).find("model.safetensors: tensor 'model.norm.weight'"), std::string::npos)
        << e.what();
  }
}

// Random byte damage in a shard header: every outcome is a clean load or a moert::Error, never a crash or
// another exception type.
TEST(CheckpointFault, RandomHeaderDamageNeverCrashes) {
  TempDir tmp;
  copy_checkpoint(kData / "tiny-v3-bf16", tmp.path());
  const fs::path shard = tmp.path() / kShard2;
  const std::string pristine = read_bytes(shard);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | static_cast<uint8_t>(pristine[i]);
  std::mt19937 rng(1234);
  int errors = 0, loads = 0;
  const char kJsonish[] = "{}[]\":,0123456789-eE. ";
  for (int iter = 0; iter < 60; ++iter) {
    std::string b = pristine;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      size_t pos = rng() % (8 + hlen);
      b[pos] = (rng() % 2) ? static_cast<char>(rng()) : kJsonish[rng() % (sizeof(kJsonish) - 1)];
    }
    write_bytes(shard, b);
    try {
      load_cpp(tmp.str());
      ++loads;
    } catch (const moert::Error& e) {
      ++errors;
      EXPECT_FALSE(std::string(e.what()).empty());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iter << ": not a moert::Error: " << e.what();
    }
  }
  EXPECT_GT(errors, 0);
  (void)loads;
}

}  // namespace
