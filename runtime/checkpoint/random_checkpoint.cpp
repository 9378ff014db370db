#include "checkpoint/random_checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cpu/numeric_types.h"
#include "util/error.h"
#include "weights/safetensors_writer.h"

namespace moert {
namespace {

// xoshiro-style generator with a cheap approximately-normal draw (sum of 4 uniforms, unit variance).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  float normal() { return (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7320508f; }
  // The same from one draw (four 16-bit uniforms): a quarter of the work, for block-seeded checkpoints.
  float quick_normal() {
    const uint64_t r = next();
    const uint32_t sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
    return (static_cast<float>(sum) * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
  }

 private:
  uint64_t s_;
};

class Builder {
 public:
  Builder(const std::string& dir, const RandomCheckpointSpec& s) : dir_(dir), s_(s), rng_(s.seed) {}

  void linear(const std::string& name, int64_t n, int64_t k) {
    const float std_dev = 1.0f / std::sqrt(static_cast<float>(k));
    if (!s_.fp8) {
      random_bf16(name, n, k, std_dev);
      return;
    }
    const int64_t bn = (n + 127) / 128, bk = (k + 127) / 128;
    std::vector<float> scale(static_cast<size_t>(bn * bk), 0.0f);
    std::vector<uint8_t> q(static_cast<size_t>(n * k));
    // One block of 128 rows at a time: its scales are its own rows' maxima.
    draw_blocks(name, n, k, std_dev, [&](int64_t r0, int64_t rows, const float* w) {
      float* sb = scale.data() + (r0 / 128) * bk;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < k; ++j) sb[j / 128] = std::max(sb[j / 128], std::fabs(w[i * k + j]));
      for (int64_t j = 0; j < bk; ++j) sb[j] = std::max(sb[j], 1e-8f) / 448.0f;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < k; ++j)
          q[(r0 + i) * k + j] = kernels::float_to_e4m3(w[i * k + j] / sb[j / 128]);
    });
    put(name, DType::kF8E4M3, {n, k}, std::move(q));
    std::vector<uint8_t> sb(scale.size() * 4);
    std::memcpy(sb.data(), scale.data(), sb.size());
    put(name + "_scale_inv", DType::kF32, {bn, bk}, std::move(sb));
  }

  // Draws the normal matrix [n, k] * std_dev and hands it to `use` in blocks of up to 128 rows (r0, rows,
  // values): in order from the one generator, or with block seeds on the threads (blocks in any order).
  void draw_blocks(const std::string& name, int64_t n, int64_t k, float std_dev,
                   const std::function<void(int64_t, int64_t, const float*)>& use) {
    const int64_t blocks = (n + 127) / 128;
    auto block = [&](Rng& rng, int64_t b, std::vector<float>& w) {
      const int64_t r0 = b * 128, rows = std::min<int64_t>(128, n - r0);
      w.resize(static_cast<size_t>(rows * k));
      if (s_.block_seeds)
        for (float& v : w) v = rng.quick_normal() * std_dev;
      else
        for (float& v : w) v = rng.normal() * std_dev;
      use(r0, rows, w.data());
    };
    if (!s_.block_seeds) {
      std::vector<float> w;
      for (int64_t b = 0; b < blocks; ++b) block(rng_, b, w);
      return;
    }
    uint64_t tensor_seed = s_.seed * 0x9E3779B97F4A7C15ull;  // FNV-1a of the name: the same on every platform
    for (unsigned char c : name) tensor_seed = (tensor_seed ^ c) * 0x100000001B3ull;
    const int64_t threads = std::min<int64_t>(
        blocks, s_.threads > 0 ? s_.threads : std::max(1u, std::thread::hardware_concurrency()));
    auto worker = [&](int64_t t) {
      std::vector<float> w;
      for (int64_t b = t; b < blocks; b += threads) {
        Rng rng(tensor_seed + 0x632BE59BD9B4E019ull * static_cast<uint64_t>(b + 1));
        block(rng, b, w);
      }
    };
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < threads; ++t) pool.emplace_back(worker, t);
    worker(0);
    for (std::thread& th : pool) th.join();
  }

  void norm(const std::string& name, int64_t n) {
    std::vector<float> w(n);
    for (float& v : w) v = 1.0f + 0.1f * (rng_.uniform() - 0.5f);
    bf16(name, {n}, w);
  }

  void bf16(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& w) {
    std::vector<uint8_t> b(w.size() * 2);
    for (size_t i = 0; i < w.size(); ++i) {
      const uint16_t h = kernels::float_to_bf16(w[i]);
      b[2 * i] = static_cast<uint8_t>(h);
      b[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
    put(name, DType::kBF16, std::move(shape), std::move(b));
  }

  void random_bf16(const std::string& name, int64_t rows, int64_t cols, float std_dev) {
    std::vector<uint8_t> b(static_cast<size_t>(rows * cols) * 2);
    draw_blocks(name, rows, cols, std_dev, [&](int64_t r0, int64_t n, const float* w) {
      uint8_t* out = b.data() + static_cast<size_t>(r0 * cols) * 2;
      for (int64_t i = 0; i < n * cols; ++i) {
        const uint16_t h = kernels::float_to_bf16(w[i]);
        out[2 * i] = static_cast<uint8_t>(h);
        out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
    });
    put(name, DType::kBF16, {rows, cols}, std::move(b));
  }

  void f32(const std::string& name, const std::vector<float>& w) {
    std::vector<uint8_t> b(w.size() * 4);
    std::memcpy(b.data(), w.data(), b.size());
    put(name, DType::kF32, {static_cast<int64_t>(w.size())}, std::move(b));
  }

  void mlp(const std::string& p, int64_t inter) {
    linear(p + "gate_proj.weight", inter, s_.hidden);
    linear(p + "up_proj.weight", inter, s_.hidden);
    linear(p + "down_proj.weight", s_.hidden, inter);
  }

  void layer(int64_t i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t H = s_.hidden, qk = s_.nope + s_.rope;
    norm(p + "input_layernorm.weight", H);
    norm(p + "post_attention_layernorm.weight", H);
    const std::string a = p + "self_attn.";
    if (s_.q_lora) {
      linear(a + "q_a_proj.weight", s_.q_lora, H);
      norm(a + "q_a_layernorm.weight", s_.q_lora);
      linear(a + "q_b_proj.weight", s_.heads * qk, s_.q_lora);
    } else {
      linear(a + "q_proj.weight", s_.heads * qk, H);
    }
    linear(a + "kv_a_proj_with_mqa.weight", s_.kv_lora + s_.rope, H);
    norm(a + "kv_a_layernorm.weight", s_.kv_lora);
    linear(a + "kv_b_proj.weight", s_.heads * (s_.nope + s_.vdim), s_.kv_lora);
    linear(a + "o_proj.weight", H, s_.heads * s_.vdim);
    const std::string m = p + "mlp.";
    if (i < s_.dense_layers) {
      mlp(m, s_.intermediate);
      return;
    }
    random_bf16(m + "gate.weight", s_.experts, H, 1.0f / std::sqrt(static_cast<float>(H)));
    std::vector<float> bias(s_.experts);
    for (float& b : bias) b = 0.05f * rng_.normal();
    f32(m + "gate.e_score_correction_bias", bias);
    for (int64_t e = 0; e < s_.experts; ++e)
      mlp(m + "experts." + std::to_string(e) + ".", s_.moe_intermediate);
    if (s_.shared) mlp(m + "shared_experts.", s_.moe_intermediate * s_.shared);
  }

  void put(const std::string& name, DType t, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
    if (!shard_ || shard_->total_bytes() + bytes.size() > static_cast<size_t>(s_.shard_bytes)) flush();
    shard_->add(name, t, std::move(shape), std::move(bytes));
  }

  // Writes the current shard (if any) and starts a new one; file names are fixed up in finish().
  void flush() {
    if (shard_ && shard_->total_bytes()) {
      const std::string tmp = dir_ + "/.shard-" + std::to_string(shards_.size());
      shard_->write(tmp);
      shards_.push_back(shard_->names());
      if (on_shard) on_shard(shards_.size());
    }
    shard_ = std::make_unique<SafetensorsWriter>();
  }

  size_t shards_written() const { return shards_.size(); }
  std::function<void(size_t shards)> on_shard;  // after each shard is written (a line of progress)

  void finish() {
    flush();
    nlohmann::ordered_json index;
    index["metadata"] = nlohmann::json::object();
    nlohmann::ordered_json map = nlohmann::json::object();
    const size_t n = shards_.size();
    for (size_t i = 0; i < n; ++i) {
      char fname[64];
      std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", i + 1, n);
      std::filesystem::rename(dir_ + "/.shard-" + std::to_string(i), dir_ + "/" + fname);
      for (const std::string& t : shards_[i]) map[t] = fname;
    }
    index["weight_map"] = map;
    std::ofstream(dir_ + "/model.safetensors.index.json") << index.dump(2);
  }

 private:
  std::string dir_;
  const RandomCheckpointSpec& s_;
  Rng rng_;
  std::unique_ptr<SafetensorsWriter> shard_;
  std::vector<std::vector<std::string>> shards_;
};

}  // namespace

void write_random_checkpoint(const std::string& dir, const RandomCheckpointSpec& s) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(ErrorCode::kIo, dir + ": cannot create directory: " + ec.message());
  nlohmann::ordered_json c;
  c["architectures"] = {"DeepseekV3ForCausalLM"};
  c["model_type"] = "deepseek_v3";
  c["vocab_size"] = s.vocab;
  c["hidden_size"] = s.hidden;
  c["intermediate_size"] = s.intermediate;
  c["moe_intermediate_size"] = s.moe_intermediate;
  c["num_hidden_layers"] = s.layers;
  c["num_nextn_predict_layers"] = s.mtp;
  c["num_attention_heads"] = s.heads;
  c["num_key_value_heads"] = s.heads;
  c["q_lora_rank"] = s.q_lora ? nlohmann::json(s.q_lora) : nlohmann::json(nullptr);
  c["kv_lora_rank"] = s.kv_lora;
  c["qk_nope_head_dim"] = s.nope;
  c["qk_rope_head_dim"] = s.rope;
  c["v_head_dim"] = s.vdim;
  c["n_routed_experts"] = s.experts;
  c["n_shared_experts"] = s.shared;
  c["num_experts_per_tok"] = s.top_k;
  c["n_group"] = s.n_group;
  c["topk_group"] = s.topk_group;
  c["first_k_dense_replace"] = s.dense_layers;
  c["moe_layer_freq"] = 1;
  c["norm_topk_prob"] = true;
  c["routed_scaling_factor"] = 2.5;
  c["scoring_func"] = "sigmoid";
  c["topk_method"] = "noaux_tc";
  c["hidden_act"] = "silu";
  c["rms_norm_eps"] = 1e-6;
  c["rope_theta"] = 10000;
  c["max_position_embeddings"] = s.max_position_embeddings;
  c["rope_scaling"] = {{"type", "yarn"},
                       {"factor", static_cast<double>(s.max_position_embeddings) / 4096.0},
                       {"original_max_position_embeddings", 4096},
                       {"beta_fast", 32},
                       {"beta_slow", 1},
                       {"mscale", 1.0},
                       {"mscale_all_dim", 1.0}};
  c["bos_token_id"] = 0;
  c["eos_token_id"] = 1;
  c["tie_word_embeddings"] = false;
  c["torch_dtype"] = "bfloat16";
  if (s.fp8)
    c["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {128, 128}}};
  std::ofstream(dir + "/config.json") << c.dump(2);

  Builder b(dir, s);
  const int64_t total = s.layers + s.mtp;
  auto report = [&](double f, const std::string& stage) {
    if (s.progress && !s.progress(f, stage.c_str()))
      fail(ErrorCode::kCancelled, "checkpoint write cancelled");
  };
  int64_t current = -1;  // the layer being written, for the per-shard lines
  b.on_shard = [&](size_t shards) {
    report((current + 1.0) / (total + 1),
           "shard " + std::to_string(shards) + " written (" +
               (current < 0 ? std::string("embeddings")
                            : "layer " + std::to_string(current + 1) + " of " + std::to_string(total)) +
               ")");
  };
  b.random_bf16("model.embed_tokens.weight", s.vocab, s.hidden, 1.0f);
  report(0.5 / (total + 1), "embeddings");
  for (int64_t i = 0; i < s.layers + s.mtp; ++i) {
    current = i;
    b.layer(i);
    if (i >= s.layers) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      b.norm(p + "enorm.weight", s.hidden);
      b.norm(p + "hnorm.weight", s.hidden);
      b.random_bf16(p + "eh_proj.weight", s.hidden, 2 * s.hidden, 1.0f / std::sqrt(2.0f * s.hidden));
      b.norm(p + "shared_head.norm.weight", s.hidden);
      b.random_bf16(p + "shared_head.head.weight", s.vocab, s.hidden,
                    1.0f / std::sqrt(static_cast<float>(s.hidden)));
    }
    report((i + 1.0) / (total + 1), "layer " + std::to_string(i + 1) + " of " + std::to_string(total) + " (" +
                                        std::to_string(b.shards_written()) + " shards written)");
  }
  b.norm("model.norm.weight", s.hidden);
  b.random_bf16("lm_head.weight", s.vocab, s.hidden, 1.0f / std::sqrt(static_cast<float>(s.hidden)));
  b.finish();
  report(1.0, "done: " + std::to_string(b.shards_written()) + " shards");
}

}  // namespace moert
