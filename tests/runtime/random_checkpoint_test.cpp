// write_random_checkpoint with block seeds: the same bytes at any thread count, other bytes than the
// default's one generator, and a checkpoint of the spec's shape with finite FP8 weights and their scales.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/random_checkpoint.h"
#include "cpu/numeric_types.h"
#include "weights/weight_store.h"

namespace moert {
namespace {

RandomCheckpointSpec small_spec() {
  RandomCheckpointSpec s;
  s.vocab = 300, s.hidden = 256, s.intermediate = 384, s.moe_intermediate = 128;
  s.layers = 2, s.dense_layers = 1, s.heads = 2, s.q_lora = 128, s.kv_lora = 64, s.nope = 32, s.rope = 16;
  s.vdim = 32, s.experts = 4, s.top_k = 2, s.n_group = 2, s.topk_group = 1, s.shared = 1;
  return s;
}

// Every tensor's bytes, by name.
std::vector<std::pair<std::string, std::vector<uint8_t>>> read_all(const std::string& dir) {
  WeightStore ws(dir);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  for (const auto& [name, t] : ws.tensors_by_name()) {
    const auto* p = static_cast<const uint8_t*>(t->data);
    out.emplace_back(name, std::vector<uint8_t>(p, p + t->nbytes));
  }
  return out;
}

std::string write(const std::string& tag, bool block_seeds, int threads) {
  const std::string dir = ::testing::TempDir() + "moert_random_ckpt_" + tag;
  std::filesystem::remove_all(dir);
  RandomCheckpointSpec s = small_spec();
  s.block_seeds = block_seeds;
  s.threads = threads;
  write_random_checkpoint(dir, s);
  return dir;
}

TEST(RandomCheckpoint, BlockSeedsGiveTheSameBytesAtAnyThreadCount) {
  const std::string one = write("bs1", true, 1), three = write("bs3", true, 3), seq = write("seq", false, 0);
  const auto a = read_all(one), b = read_all(three), c = read_all(seq);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), c.size());
  size_t differ_from_default = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second, b[i].second) << a[i].first;
    ASSERT_EQ(a[i].first, c[i].first);
    EXPECT_EQ(a[i].second.size(), c[i].second.size()) << a[i].first;
    differ_from_default += a[i].second != c[i].second;
  }
  EXPECT_GT(differ_from_default, a.size() / 2);  // the random matrices, not the norms' constant-ish values

  // The FP8 weights are finite (no 0x7f/0xff NaN codes) and their block scales positive; two row blocks of
  // one matrix differ (each block has its own seed, not the same one).
  WeightStore ws(one);
  const TensorInfo* q = ws.find("model.layers.0.mlp.gate_proj.weight");
  const TensorInfo* sc = ws.find("model.layers.0.mlp.gate_proj.weight_scale_inv");
  ASSERT_TRUE(q && sc);
  ASSERT_EQ(q->dtype, DType::kF8E4M3);
  ASSERT_EQ(q->shape, (std::vector<int64_t>{384, 256}));
  const auto* qb = static_cast<const uint8_t*>(q->data);
  for (size_t i = 0; i < q->nbytes; ++i) ASSERT_NE(qb[i] & 0x7f, 0x7f) << i;
  std::vector<float> scales(sc->nbytes / 4);
  std::memcpy(scales.data(), sc->data, sc->nbytes);
  ASSERT_EQ(scales.size(), 3u * 2u);
  for (float v : scales) EXPECT_TRUE(std::isfinite(v) && v > 0) << v;
  EXPECT_NE(std::memcmp(qb, qb + 128 * 256, 128 * 256), 0);
  for (const std::string& d : {one, three, seq}) std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace moert
