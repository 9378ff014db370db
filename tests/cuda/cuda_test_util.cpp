#include "cuda_test_util.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "cpu/numeric_types.h"

namespace moert::testing {

RandomCheckpointSpec small_model_spec(int mtp) {
  RandomCheckpointSpec s;
  s.vocab = 1024;
  s.hidden = 512;
  s.intermediate = 1024;
  s.moe_intermediate = 256;
  s.layers = 2;
  s.dense_layers = 1;
  s.heads = 4;
  s.q_lora = 384;
  s.kv_lora = 512;
  s.experts = 16;
  s.top_k = 4;
  s.n_group = 4;
  s.topk_group = 2;
  s.shared = 1;
  s.mtp = mtp;
  s.max_position_embeddings = 8192;
  s.fp8 = true;
  s.seed = 7;
  return s;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

void CudaOps::SetUp() {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none)";
  cpu = make_cpu_backend(2);
  gpu = make_cuda_backend(0);
  // A fresh seed per test, printed so a failure can be rerun with MOERT_TEST_SEED.
  const char* env = std::getenv("MOERT_TEST_SEED");
  const uint32_t seed = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10))
                            : static_cast<uint32_t>(std::random_device{}());
  std::printf("[ seed     ] %u (rerun with MOERT_TEST_SEED=%u)\n", seed, seed);
  rng.seed(seed);
}

std::vector<float> CudaOps::randn(int64_t n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

std::pair<Tensor, Tensor> CudaOps::pair(const std::vector<float>& h, int64_t rows, int64_t cols) {
  Tensor a = cpu->empty(DType::kF32, rows, cols), b = gpu->empty(DType::kF32, rows, cols);
  cpu->copy_from_host(h.data(), a);
  gpu->copy_from_host(h.data(), b);
  return {a, b};
}

std::pair<Tensor, Tensor> CudaOps::pair_i32(const std::vector<int32_t>& h, int64_t rows, int64_t cols) {
  Tensor a = cpu->empty(DType::kI32, rows, cols), b = gpu->empty(DType::kI32, rows, cols);
  cpu->copy_from_host_i32(h.data(), a);
  gpu->copy_from_host_i32(h.data(), b);
  return {a, b};
}

std::pair<Tensor, Tensor> CudaOps::outputs(int64_t rows, int64_t cols) {
  Tensor a = cpu->empty(DType::kF32, rows, cols), b = gpu->empty(DType::kF32, rows, cols);
  std::vector<float> nan(static_cast<size_t>(rows * cols), std::numeric_limits<float>::quiet_NaN());
  gpu->copy_from_host(nan.data(), b);
  return {a, b};
}

std::vector<int32_t> CudaOps::host_i32(Backend& b, const Tensor& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.rows * t.cols));
  b.copy_to_host_i32(t, v.data());
  return v;
}

std::vector<float> CudaOps::host(Backend& b, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.rows * t.cols));
  b.copy_to_host(t, v.data());
  return v;
}

std::unique_ptr<HostWeight> CudaOps::weight(DType dt, int64_t n, int64_t k, float scale) {
  auto w = std::make_unique<HostWeight>();
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  const size_t count = static_cast<size_t>(n * k);
  w->info.dtype = dt;
  w->info.shape = {n, k};
  if (dt == DType::kF8E4M3) {
    w->bytes.resize(count);
    for (auto& b : w->bytes) b = kernels::float_to_e4m3(d(rng) * 64.0f);
    const int64_t bn = (n + 127) / 128, bk = (k + 127) / 128;
    w->scale.resize(static_cast<size_t>(bn * bk));
    for (auto& s : w->scale) s = scale / 64.0f * u(rng);
    w->scale_info.dtype = DType::kF32;
    w->scale_info.shape = {bn, bk};
    w->scale_info.data = reinterpret_cast<const uint8_t*>(w->scale.data());
    w->scale_info.nbytes = w->scale.size() * 4;
  } else if (dt == DType::kBF16) {
    w->bytes.resize(count * 2);
    auto* p = reinterpret_cast<uint16_t*>(w->bytes.data());
    for (size_t i = 0; i < count; ++i) p[i] = kernels::float_to_bf16(d(rng) * scale);
  } else {
    w->bytes.resize(count * 4);
    auto* p = reinterpret_cast<float*>(w->bytes.data());
    for (size_t i = 0; i < count; ++i) p[i] = d(rng) * scale;
  }
  w->info.data = w->bytes.data();
  w->info.nbytes = w->bytes.size();
  w->cpu.w = cpu->weight(w->info, n, k);
  w->gpu.w = gpu->weight(w->info, n, k);
  if (dt == DType::kF8E4M3) {
    const int64_t bn = (n + 127) / 128, bk = (k + 127) / 128;
    w->cpu.scale = cpu->weight(w->scale_info, bn, bk);
    w->gpu.scale = gpu->weight(w->scale_info, bn, bk);
  }
  return w;
}

}  // namespace moert::testing
