// CPU kernel benchmark: the GEMM shapes of moert-tiny-coder (FP8 weights, 128x128 block scales) at M=1
// (decode) and M=512 (prefill) on 1 and 2 threads, plus attention. Prints GFLOP/s, GB/s of weight reads
// and the speed-up over a naive loop (gemm_xwt_reference, timed on a few rows and scaled).
//
//   moert_kernels_bench [--quick] [--isa portable|avx2|avx512]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

using namespace moert::kernels;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double time_it(F&& f, double min_s) {
  f();  // warm-up
  int reps = 0;
  const double t0 = now();
  double t = t0;
  do {
    f();
    ++reps;
    t = now();
  } while (t - t0 < min_s);
  return (t - t0) / reps;
}

struct Fp8Weight {
  std::vector<uint8_t> q;
  std::vector<float> s;
  WeightRef ref;
  Fp8Weight(int64_t n, int64_t k, std::mt19937& rng) : q(n * k), s(((n + 127) / 128) * ((k + 127) / 128)) {
    std::uniform_int_distribution<int> b(0, 255);
    for (auto& v : q) {
      int x = b(rng);
      if ((x & 0x7f) == 0x7f) x &= 0xfe;
      v = static_cast<uint8_t>(x);
    }
    std::uniform_real_distribution<float> u(1e-4f, 1e-3f);
    for (auto& v : s) v = u(rng);
    ref.type = moert::DType::kF8E4M3;
    ref.data = q.data();
    ref.n = n;
    ref.k = k;
    ref.ld = k;
    ref.scale = s.data();
    ref.scale_ld = (k + 127) / 128;
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) {
      const std::string v = argv[++i];
      set_cpu_isa(v == "portable" ? CpuIsa::kPortable : v == "avx2" ? CpuIsa::kAvx2 : CpuIsa::kAvx512);
    }
  }
  const double min_s = quick ? 0.05 : 0.25;
  std::printf("isa: %s\n", cpu_isa_name(cpu_isa()));
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);

  struct Shape {
    int64_t n, k;
    const char* what;
    int per_token;  // calls per decoded token in moert-tiny-coder (for the decode estimate)
  };
  // per token: 4 layers of attention (q_a, q_b, kv_a, o, kv_b absorb: 4 heads x (xw 128x512 + xwt 128x512)),
  // 1 dense MLP, 3 MoE layers (4 routed + 1 shared expert: gate, up, down), the router (bf16, ignored),
  // lm_head.
  const Shape shapes[] = {{192, 384, "q_a", 4},          {768, 192, "q_b", 4},
                          {576, 384, "kv_a", 4},         {1024, 512, "kv_b (expand)", 0},
                          {384, 512, "o_proj", 4},       {1024, 384, "mlp gate/up", 2},
                          {384, 1024, "mlp down", 1},    {256, 384, "expert gate/up", 30},
                          {384, 256, "expert down", 15}, {128, 512, "absorb out", 16},
                          {8320, 384, "lm_head", 1}};
  ThreadPool pool2(2);
  const int64_t Ms[] = {1, 512};
  std::printf("%-16s %5s %5s %5s %3s %10s %9s %9s %8s\n", "shape", "M", "N", "K", "thr", "us/call", "GFLOP/s",
              "GB/s(W)", "x naive");
  double decode_us[3] = {0, 0, 0};
  for (const Shape& sh : shapes) {
    Fp8Weight w(sh.n, sh.k, rng);
    for (int64_t M : Ms) {
      std::vector<float> x(M * sh.k), y(M * sh.n);
      for (auto& v : x) v = nd(rng);
      // naive: a few rows of the reference loop, scaled to M rows
      const int64_t mn = std::min<int64_t>(M, 2);
      const double t_naive =
          time_it([&] { gemm_xwt_reference(x.data(), mn, sh.k, w.ref, y.data(), sh.n); }, min_s / 2) * M / mn;
      for (int thr : {1, 2}) {
        ThreadPool* pool = thr == 1 ? nullptr : &pool2;
        const double t = time_it([&] { gemm_xwt(x.data(), M, sh.k, w.ref, y.data(), sh.n, pool); }, min_s);
        const double flops = 2.0 * M * sh.n * sh.k, bytes = double(sh.n) * sh.k;
        std::printf("%-16s %5ld %5ld %5ld %3d %10.2f %9.1f %9.2f %8.1f\n", sh.what, (long)M, (long)sh.n,
                    (long)sh.k, thr, t * 1e6, flops / t * 1e-9, bytes / t * 1e-9, t_naive / t);
        if (M == 1) decode_us[thr] += t * 1e6 * sh.per_token;
      }
    }
  }
  // gemm_xw: MLA's absorbed W_UK, [128, 512] per head
  {
    Fp8Weight w(128, 512, rng);
    for (int64_t M : {1, 4, 16}) {
      std::vector<float> x(M * 128), y(M * 512);
      for (auto& v : x) v = nd(rng);
      const double t_naive =
          time_it([&] { gemm_xw_reference(x.data(), M, 128, w.ref, y.data(), 512); }, min_s / 2);
      for (int thr : {1, 2}) {
        ThreadPool* pool = thr == 1 ? nullptr : &pool2;
        const double t = time_it([&] { gemm_xw(x.data(), M, 128, w.ref, y.data(), 512, pool); }, min_s);
        std::printf("%-16s %5ld %5d %5d %3d %10.2f %9.1f %9.2f %8.1f\n", "xw absorb q", (long)M, 128, 512,
                    thr, t * 1e6, 2.0 * M * 128 * 512 / t * 1e-9, 128.0 * 512 / t * 1e-9, t_naive / t);
        decode_us[thr] += (M == 1) ? t * 1e6 * 16 : 0;
      }
    }
  }
  std::printf(
      "decode GEMM time per token: %.1f us (1 thread), %.1f us (2 threads) -> %.0f / %.0f tok/s GEMM-only\n",
      decode_us[1], decode_us[2], 1e6 / decode_us[1], 1e6 / decode_us[2]);

  // attention: prefill (expanded, 512 tokens, 4 heads, dqk 192, dv 128) and decode (latent, 512 + 64)
  {
    const int64_t T = 512, H = 4, dqk = 192, dv = 128;
    std::vector<float> q(T * H * dqk), k(T * H * dqk), v(T * H * dv), o(T * H * dv);
    for (auto* a : {&q, &k, &v})
      for (auto& e : *a) e = nd(rng) * 0.3f;
    std::vector<int32_t> pos(T);
    for (int64_t i = 0; i < T; ++i) pos[i] = static_cast<int32_t>(i);
    const double fl = 2.0 * H * (T * (T + 1) / 2.0) * (dqk + dv);
    for (int thr : {1, 2}) {
      ThreadPool* pool = thr == 1 ? nullptr : &pool2;
      const double t = time_it(
          [&] {
            attention_expanded(q.data(), T, H * dqk, k.data(), H * dqk, v.data(), H * dv, T, H, dqk, dv,
                               pos.data(), 0.07f, o.data(), H * dv, pool);
          },
          min_s);
      std::printf("attention_expanded T=%ld heads=%ld thr=%d: %.2f ms, %.1f GFLOP/s\n", (long)T, (long)H, thr,
                  t * 1e3, fl / t * 1e-9);
    }
    const int64_t lat = 512, rope = 64, page_rows = 64, S = 512;
    std::vector<float> cache(S * (lat + rope));
    for (auto& e : cache) e = nd(rng) * 0.3f;
    std::vector<int32_t> pages(S / page_rows);
    for (size_t i = 0; i < pages.size(); ++i) pages[i] = static_cast<int32_t>(pages.size() - 1 - i);
    PagedRows rows{cache.data(), pages.data(), page_rows, page_rows * (lat + rope)};
    std::vector<float> ql(H * lat), qr(H * rope), ol(H * lat);
    for (auto& e : ql) e = nd(rng);
    for (auto& e : qr) e = nd(rng);
    int32_t p1 = static_cast<int32_t>(S - 1);
    for (int thr : {1, 2}) {
      ThreadPool* pool = thr == 1 ? nullptr : &pool2;
      const double t = time_it(
          [&] {
            attention_latent(ql.data(), H * lat, qr.data(), H * rope, rope, 1, &rows, nullptr, lat, rope, H,
                             &p1, 0.07f, ol.data(), H * lat, pool);
          },
          min_s);
      std::printf("attention_latent ctx=%ld heads=%ld thr=%d: %.2f us/token/layer, %.1f GFLOP/s\n", (long)S,
                  (long)H, thr, t * 1e6, 2.0 * H * S * (lat + rope + lat) / t * 1e-9);
    }
    // N decoding sequences (each its own pages, context S): one batched call against N per-sequence calls,
    // at this model's heads and at more (DeepSeek-V3 has 128).
    for (auto [N, H] : {std::pair<int64_t, int64_t>{16, 4}, {64, 4}, {16, 16}, {64, 16}, {16, 128}}) {
      std::vector<float> pool(N * S * (lat + rope));
      for (auto& e : pool) e = nd(rng) * 0.3f;
      const int64_t per = S / page_rows;
      std::vector<int32_t> tables(N * per);
      for (int64_t i = 0; i < N * per; ++i) tables[i] = static_cast<int32_t>((i * 7919) % (N * per));
      std::vector<PagedRows> seqs(N);
      for (int64_t i = 0; i < N; ++i)
        seqs[i] = PagedRows{pool.data(), tables.data() + i * per, page_rows, page_rows * (lat + rope)};
      std::vector<int32_t> row_seq(N), pos(N, static_cast<int32_t>(S - 1));
      for (int64_t i = 0; i < N; ++i) row_seq[i] = static_cast<int32_t>(i);
      std::vector<float> qln(N * H * lat), qrn(N * H * rope), on(N * H * lat);
      for (auto& e : qln) e = nd(rng);
      for (auto& e : qrn) e = nd(rng);
      const double batched = time_it(
          [&] {
            attention_latent(qln.data(), H * lat, qrn.data(), H * rope, rope, N, seqs.data(), row_seq.data(),
                             lat, rope, H, pos.data(), 0.07f, on.data(), H * lat, &pool2);
          },
          min_s);
      const double separate = time_it(
          [&] {
            for (int64_t i = 0; i < N; ++i)
              attention_latent(qln.data() + i * H * lat, H * lat, qrn.data() + i * H * rope, H * rope, rope,
                               1, &seqs[i], nullptr, lat, rope, H, pos.data(), 0.07f, on.data() + i * H * lat,
                               H * lat, &pool2);
          },
          min_s);
      std::printf(
          "attention_latent %ld sequences ctx=%ld heads=%ld thr=2: batched %.1f us, per-sequence calls "
          "%.1f us, ratio %.2fx\n",
          (long)N, (long)S, (long)H, batched * 1e6, separate * 1e6, separate / batched);
    }
  }
  return 0;
}
