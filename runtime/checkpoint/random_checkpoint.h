// Writes a random-weight DeepSeek-V3 checkpoint in the released layout (config.json, FP8 e4m3 linear
// weights with 128x128 weight_scale_inv blocks or bf16, bf16 norms/embeddings/router, fp32 routing bias,
// sharded safetensors with an index) for benchmarks and for shapes that have no released weights.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace moert {

struct RandomCheckpointSpec {
  int64_t vocab = 8192, hidden = 2048, intermediate = 10944, moe_intermediate = 1408;
  int64_t layers = 3, dense_layers = 1, heads = 16;
  int64_t q_lora = 1536;  // 0: q_proj
  int64_t kv_lora = 512, nope = 128, rope = 64, vdim = 128;
  int64_t experts = 64, top_k = 6, n_group = 8, topk_group = 4, shared = 2;
  int64_t mtp = 0;
  int64_t max_position_embeddings = 163840;
  bool fp8 = true;
  uint64_t seed = 1;
  // Block seeds: every 128-row block of a random matrix drawn from a generator seeded by (seed, the tensor's
  // name, the block), the blocks spread over `threads` threads (0: every core). The same bits at any thread
  // count, but other bits than the default's one generator in order (which every earlier checkpoint of a seed
  // was written with); a V3-width write takes seconds instead of minutes.
  bool block_seeds = false;
  int threads = 0;
  int64_t shard_bytes = 1ll << 30;  // start a new shard past this size
  // Called after each layer and shard with the fraction written and what was written; false cancels
  // (Error(kCancelled)). A V3-sized write takes minutes.
  std::function<bool(double fraction, const char* stage)> progress;
};

// Creates `dir` (if needed) and writes the checkpoint. Throws Error(kIo) on failure.
void write_random_checkpoint(const std::string& dir, const RandomCheckpointSpec& spec);

}  // namespace moert
