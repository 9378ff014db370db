// CUDA backend benchmark: the FP8 linear (act-quant + block-scaled GEMM, as the model calls it) at
// DeepSeek-V3 decode shapes (M = 1, 16, 128) and prefill shapes (M = 1024 .. 4096), against the memory floor
// (bytes moved once / measured device copy bandwidth) and in TFLOP/s. Paths: "fp8" = ActMode::kFp8 with the
// default policy (cuBLASLt above 16 rows, own small-M kernel below), "fp8-lt" = cuBLASLt at every M,
// "f32" = the fp32-activation reference path (own kernels).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cpu/numeric_types.h"
#include "weights/safetensors.h"

using namespace moert;

namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

double copy_bandwidth() {
  const size_t bytes = 1ull << 30;
  void *a = nullptr, *b = nullptr;
  ck(cudaMalloc(&a, bytes), "cudaMalloc");
  ck(cudaMalloc(&b, bytes), "cudaMalloc");
  ck(cudaMemset(a, 1, bytes), "cudaMemset");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int i = 0; i < 2; ++i) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  std::vector<float> ms;
  for (int i = 0; i < 10; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3);  // read + write
}

struct HostFp8 {
  std::vector<uint8_t> q;
  std::vector<float> s;
  TensorInfo wi, si;
};

HostFp8 random_fp8(int64_t n, int64_t k, std::mt19937& rng) {
  HostFp8 h;
  std::normal_distribution<float> d(0.0f, 64.0f);
  h.q.resize(static_cast<size_t>(n * k));
  for (auto& b : h.q) b = kernels::float_to_e4m3(d(rng));
  h.s.assign(static_cast<size_t>(((n + 127) / 128) * ((k + 127) / 128)), 1e-3f);
  h.wi.dtype = DType::kF8E4M3;
  h.wi.shape = {n, k};
  h.wi.data = h.q.data();
  h.wi.nbytes = h.q.size();
  h.si.dtype = DType::kF32;
  h.si.shape = {(n + 127) / 128, (k + 127) / 128};
  h.si.data = reinterpret_cast<const uint8_t*>(h.s.data());
  h.si.nbytes = h.s.size() * 4;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda_device_count() == 0) {
    std::printf("moert_cuda_bench: no CUDA device, nothing to time\n");
    return 0;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 20;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double bw = copy_bandwidth();
  std::printf("device: %s (%d SMs), measured copy bandwidth %.0f GB/s\n", prop.name, prop.multiProcessorCount,
              bw / 1e9);

  setenv("MOERT_CUDA_GEMM", "auto", 1);
  auto gpu = make_cuda_backend(0);
  setenv("MOERT_CUDA_GEMM", "lt", 1);
  auto gpu_lt = make_cuda_backend(0);
  unsetenv("MOERT_CUDA_GEMM");

  std::mt19937 rng(1);
  const int64_t shapes[][2] = {{4096, 7168}, {2048, 7168}, {7168, 2048}};
  const int64_t ms[] = {1, 16, 128, 1024, 2048, 4096};
  std::printf("%-7s %6s %6s %6s %10s %10s %7s %8s  %s\n", "path", "M", "N", "K", "time_us", "floor_us",
              "x_floor", "TFLOP/s", "gemm path counts (lt/small/tiled/fallback)");
  for (const auto& nk : shapes) {
    const int64_t N = nk[0], K = nk[1];
    constexpr int kCopies = 4;  // rotate weights so repeated runs do not just hit L2
    std::vector<HostFp8> host;
    for (int c = 0; c < kCopies; ++c) host.push_back(random_fp8(N, K, rng));
    for (const int64_t M : ms) {
      struct Variant {
        const char* name;
        Backend* b;
        ActMode mode;
      } variants[] = {{"fp8", gpu.get(), ActMode::kFp8},
                      {"fp8-lt", gpu_lt.get(), ActMode::kFp8},
                      {"f32", gpu.get(), ActMode::kF32}};
      for (const Variant& v : variants) {
        if (v.mode == ActMode::kF32 && M > 1024) continue;  // the reference path is slow at prefill sizes
        if (v.b == gpu_lt.get() && M > 16) continue;        // same as "fp8" there
        Backend& b = *v.b;
        std::vector<WeightMatrix> w(kCopies);
        for (int c = 0; c < kCopies; ++c) {
          w[c].w = b.weight(host[c].wi, N, K);
          w[c].scale = b.weight(host[c].si, (N + 127) / 128, (K + 127) / 128);
        }
        std::vector<float> xh(static_cast<size_t>(M * K));
        std::normal_distribution<float> d(0.0f, 1.0f);
        for (auto& x : xh) x = d(rng);
        Tensor x = b.empty(DType::kF32, M, K), y = b.empty(DType::kF32, M, N);
        b.copy_from_host(xh.data(), x);
        const CudaGemmStats s0 = cuda_gemm_stats(b);
        for (int i = 0; i < 3; ++i) b.linear(x, w[i % kCopies], y, v.mode);
        cuda_synchronize(b);
        std::vector<double> us;
        for (int r = 0; r < 5; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < iters; ++i) b.linear(x, w[i % kCopies], y, v.mode);
          cuda_synchronize(b);
          const auto t1 = std::chrono::steady_clock::now();
          us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / iters);
        }
        std::sort(us.begin(), us.end());
        const double t = us[us.size() / 2];
        const CudaGemmStats s1 = cuda_gemm_stats(b);
        const double bytes = static_cast<double>(N) * K + host[0].s.size() * 4.0 + M * K * 4.0 + M * N * 4.0;
        const double floor_us = bytes / bw * 1e6;
        std::printf("%-7s %6lld %6lld %6lld %10.1f %10.1f %7.2f %8.1f  %lld/%lld/%lld/%lld\n", v.name,
                    static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K), t,
                    floor_us, t / floor_us, 2.0 * M * N * K / (t * 1e-6) / 1e12, s1.lt_fp8 - s0.lt_fp8,
                    s1.small_m - s0.small_m, s1.tiled - s0.tiled, s1.lt_fallbacks - s0.lt_fallbacks);
      }
    }
  }
  return 0;
}
