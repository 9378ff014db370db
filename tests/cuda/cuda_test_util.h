// Helpers of the CUDA tests: random host data, tensors on both backends, weights in their stored types,
// NaN-poisoned outputs and the relative L2 error ||got - ref|| / ||ref|| (infinite when got has a NaN).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "checkpoint/random_checkpoint.h"
#include "weights/safetensors.h"

namespace moert::testing {

double rel_err(const std::vector<float>& got, const std::vector<float>& ref);

// The random model of the whole-model CUDA tests: FP8, 2 layers (one dense, one MoE of 16 experts, top-4 in
// 4 groups), hidden 512, vocab 1024, with `mtp` MTP layers.
RandomCheckpointSpec small_model_spec(int mtp);

// A checkpoint-like weight in host memory (kept alive here) and its views on the two backends.
struct HostWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> scale;
  TensorInfo info, scale_info;
  WeightMatrix cpu, gpu;
};

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override;
  std::vector<float> randn(int64_t n, float scale = 1.0f);
  // The same F32 data on both backends.
  std::pair<Tensor, Tensor> pair(const std::vector<float>& h, int64_t rows, int64_t cols);
  std::pair<Tensor, Tensor> pair_i32(const std::vector<int32_t>& h, int64_t rows, int64_t cols);
  // A CPU output and a NaN-poisoned CUDA output of the same shape.
  std::pair<Tensor, Tensor> outputs(int64_t rows, int64_t cols);
  std::vector<float> host(Backend& b, const Tensor& t);
  std::vector<int32_t> host_i32(Backend& b, const Tensor& t);
  // Random weight [n, k]: kF8E4M3 (with 128x128 block scales), kBF16 or kF32.
  std::unique_ptr<HostWeight> weight(DType dt, int64_t n, int64_t k, float scale = 0.05f);

  std::unique_ptr<Backend> cpu, gpu;
  std::mt19937 rng{12345};
};

}  // namespace moert::testing
