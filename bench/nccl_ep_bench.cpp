// The NCCL transport's device all-to-all (runtime/ep/transport_nccl.h) at the sizes DeepEP's benchmarks
// use for DeepSeek-V3 (hidden 7168, 256 routed experts, top-8), one rank per GPU in threads:
//  - decode, as DeepEP's low-latency test: 128 tokens per rank, one row per selected expert (128 x 8),
//    FP8 rows of hidden + hidden/128*4 + 16 bytes (values, scales, metadata), BF16 rows of hidden*2;
//  - prefill, as DeepEP's normal test: 4096 tokens per rank, one row per (token, destination rank that
//    holds any of its experts), FP8 rows of hidden + hidden/128*4 bytes, BF16 rows of hidden*2;
//  - combine: BF16 rows back the reverse way.
// Routing is uniform (8 distinct experts of 256 per token, experts split evenly over the ranks). Per case:
// the median host time per call (the call returns when the exchange is complete) of the slowest rank, the
// bytes a rank receives (itself included, as DeepEP counts them) and GB/s. With one rank every row is the
// rank's own (an NCCL local copy): the figure is device copy speed, not a link.
//   moert_nccl_bench [iterations]   (exits 0 with a message when there is no CUDA device or no NCCL)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ep/transport_nccl.h"
#include "util/error.h"

using namespace moert;
using namespace moert::ep;

namespace {

constexpr int kHidden = 7168, kExperts = 256, kTopK = 8;

struct Case {
  const char* name;
  int tokens;
  bool per_expert;  // a row per selected expert (low-latency) or per destination rank (normal)
  bool combine;     // the reverse direction
  size_t row_bytes;
};

const Case kCases[] = {
    {"decode dispatch fp8", 128, true, false, kHidden + kHidden / 128 * 4 + 16},
    {"decode dispatch bf16", 128, true, false, size_t(kHidden) * 2},
    {"decode combine bf16", 128, true, true, size_t(kHidden) * 2},
    {"prefill dispatch fp8", 4096, false, false, kHidden + kHidden / 128 * 4},
    {"prefill dispatch bf16", 4096, false, false, size_t(kHidden) * 2},
    {"prefill combine bf16", 4096, false, true, size_t(kHidden) * 2},
};

// rows[src][dst] for `tokens` tokens on each of n ranks, uniform top-8 routing.
std::vector<std::vector<size_t>> route(int n, int tokens, bool per_expert) {
  std::vector<std::vector<size_t>> rows(n, std::vector<size_t>(n, 0));
  std::vector<int> experts(kExperts);
  for (int src = 0; src < n; ++src) {
    std::mt19937 rng(1234 + src);
    for (int t = 0; t < tokens; ++t) {
      std::iota(experts.begin(), experts.end(), 0);
      for (int k = 0; k < kTopK; ++k) std::swap(experts[k], experts[k + rng() % (kExperts - k)]);
      std::vector<bool> hit(n, false);
      for (int k = 0; k < kTopK; ++k) {
        const int dst = static_cast<int>(static_cast<int64_t>(experts[k]) * n / kExperts);
        if (per_expert)
          ++rows[src][dst];
        else if (!hit[dst])
          hit[dst] = true, ++rows[src][dst];
      }
    }
  }
  return rows;
}

void ck(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

struct Result {
  double us = 0, recv_bytes = 0, peer_bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  if (!nccl_built()) {
    std::printf("moert_nccl_bench: this build has no NCCL transport; nothing to measure\n");
    return 0;
  }
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("moert_nccl_bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("NCCL all_to_all_device, %d rank(s) (one per GPU, threads), %s, %d iterations\n", n, prop.name,
              iters);
  std::printf("DeepSeek-V3 dispatch/combine: hidden %d, %d experts, top-%d, uniform routing\n", kHidden,
              kExperts, kTopK);

  constexpr size_t num_cases = sizeof(kCases) / sizeof(kCases[0]);
  std::vector<std::vector<std::vector<size_t>>> bytes(num_cases);  // [case][src][dst]
  for (size_t c = 0; c < num_cases; ++c) {
    const auto rows = route(n, kCases[c].tokens, kCases[c].per_expert);
    bytes[c].assign(n, std::vector<size_t>(n));
    for (int s = 0; s < n; ++s)
      for (int d = 0; d < n; ++d)
        bytes[c][s][d] = (kCases[c].combine ? rows[d][s] : rows[s][d]) * kCases[c].row_bytes;
  }

  std::vector<Result> results(num_cases);
  std::vector<std::string> errors(n);
  auto boot = make_in_process_group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        NcclOptions o;
        o.rank = r;
        o.size = n;
        o.device = r;
        o.bootstrap = boot[r];
        auto t = make_nccl_transport(o);
        ck(cudaSetDevice(r), "cudaSetDevice");
        size_t max_s = 0, max_r = 0;
        for (size_t c = 0; c < num_cases; ++c) {
          size_t s = 0, v = 0;
          for (int p = 0; p < n; ++p) s += bytes[c][r][p], v += bytes[c][p][r];
          max_s = std::max(max_s, s);
          max_r = std::max(max_r, v);
        }
        void *send = nullptr, *recv = nullptr;
        ck(cudaMalloc(&send, max_s + 1), "cudaMalloc");
        ck(cudaMalloc(&recv, max_r + 1), "cudaMalloc");
        ck(cudaMemset(send, 1, max_s + 1), "cudaMemset");
        cudaStream_t st;
        ck(cudaStreamCreate(&st), "cudaStreamCreate");
        for (size_t c = 0; c < num_cases; ++c) {
          std::vector<size_t> sb(n), rb(n);
          for (int p = 0; p < n; ++p) sb[p] = bytes[c][r][p], rb[p] = bytes[c][p][r];
          for (int i = 0; i < 3; ++i) t->all_to_all_device(send, sb, recv, rb, st);
          t->barrier();
          std::vector<double> us;
          for (int i = 0; i < iters; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            t->all_to_all_device(send, sb, recv, rb, st);
            us.push_back(
                std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
          }
          std::sort(us.begin(), us.end());
          // Every rank's median and received bytes; the slowest rank's time is the call's time.
          std::vector<double> med(n, 0.0), rcv(n, 0.0), peer(n, 0.0);
          med[r] = us[us.size() / 2];
          for (int p = 0; p < n; ++p) rcv[r] += double(rb[p]), peer[r] += p == r ? 0.0 : double(rb[p]);
          t->all_reduce_sum(med.data(), med.size());
          t->all_reduce_sum(rcv.data(), rcv.size());
          t->all_reduce_sum(peer.data(), peer.size());
          if (r == 0) {
            results[c].us = *std::max_element(med.begin(), med.end());
            results[c].recv_bytes = *std::max_element(rcv.begin(), rcv.end());
            results[c].peer_bytes = *std::max_element(peer.begin(), peer.end());
          }
        }
        cudaStreamDestroy(st);
        cudaFree(send);
        cudaFree(recv);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r)
    if (!errors[r].empty()) {
      std::fprintf(stderr, "rank %d: %s\n", r, errors[r].c_str());
      return 1;
    }

  std::printf("%-22s %8s %13s %13s %10s %10s\n", "case", "tokens", "recv MB/rank", "peer MB/rank", "us/call",
              "GB/s recv");
  for (size_t c = 0; c < num_cases; ++c) {
    const Result& x = results[c];
    std::printf("%-22s %8d %13.2f %13.2f %10.1f %10.1f\n", kCases[c].name, kCases[c].tokens,
                x.recv_bytes / 1e6, x.peer_bytes / 1e6, x.us, x.recv_bytes / (x.us * 1e3));
  }
  return 0;
}
