// Decode GEMM bandwidth: x @ W^T at M=1 over FP8 weights of the wide model's expert shape (1408 x 2048,
// 128x128 block scales), 2 threads, against a plain streaming read of the same bytes in the same run.
//   cold: 192 matrices (554 MB, more than the L3) one after another, as decode walks the layers;
//   hot:  one matrix again and again (each thread's half fits its L2): the kernel's compute ceiling.
// Runs alternate (stream, cold, hot, ...) and the medians are printed, with the ratio cold / stream.
// Where the CPU has AVX-512 VBMI each round runs the FP8 passes twice, with the e4m3 table lookup
// (cpu_vbmi) and with the widening conversion, the order flipped each round, and prints both and their ratio.
// Each round also runs the cold pass over the same matrices in moert_q4 (4-bit, group 32): G weights/s and
// its ratio to FP8's (whose bytes are its weights), with the int8-activation VNNI kernel and with the fp32
// one where the CPU has VNNI (gemm_q4.h, q4_int8_enabled).
//   moert_decode_bw_bench [--threads 2] [--rounds 7] [--isa portable|avx2|avx512] [--n 1408 --k 2048]
//                         [--mats 192] [--m 1] [--prefill-m M] [--q4-model 1]
// --m M: the decode GEMM's rows (1: one sequence's token; up to 4 take the same dot-product kernel).
// --prefill-m M: instead, the FP8-activation GEMM at M rows (gemm_xwt_fp8act) on each matrix path the CPU
// has (AMX tiles where amx_ready, AVX-512-BF16) against act_quant_dequant + the fp32 kernel, GFLOP/s; then
// the q4 prefill GEMM at M rows (gemm_q4_prefill, group 32) on each q4 path this CPU has (the fp32 panel
// path, VNNI int8, AMX-INT8 tiles where amx_int8_ready, and their scalar model unless --q4-model 0: a
// correctness model, its time is no speed), interleaved per round with the order rotated, G weights/s and
// GFLOP/s, each against the fp32 panel path of the same round (median and min-max of the ratios).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/act_quant.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/gemm_fp8act.h"
#include "cpu/gemm_q4.h"
#include "cpu/thread_pool.h"

using namespace moert::kernels;
using moert::DType;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Reads `bytes` bytes from `p` with `threads` threads, GB/s.
double stream_read(const uint8_t* p, size_t bytes, int threads) {
  std::vector<uint64_t> sink(threads * 8);
  const size_t words = bytes / 8, share = (words + threads - 1) / threads;
  auto body = [&](int t) {
    const uint64_t* q = reinterpret_cast<const uint64_t*>(p) + std::min(words, t * share);
    const size_t cnt = std::min(words, (t + 1) * share) - std::min(words, t * share);
    uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i + 8 <= cnt; i += 8)
      for (int j = 0; j < 8; ++j) a[j] ^= q[i + j];
    for (int j = 0; j < 8; ++j) sink[t * 8 + j] = a[j];
  };
  const double t0 = now();
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back(body, t);
  body(0);
  for (auto& t : ts) t.join();
  const double s = now() - t0;
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep ^ v;
  return bytes / s / 1e9;
}

std::string spread(const std::vector<double>& v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2f [%.2f-%.2f]", median(v), *std::min_element(v.begin(), v.end()),
                *std::max_element(v.begin(), v.end()));
  return std::string(b);
}

// The q4 prefill GEMM at M = pm on every q4 path here, interleaved per round (order rotated), against the
// fp32 panel path of the same round.
template <class Ref>
bool prefill_q4(int64_t pm, int64_t n, int64_t k, int64_t mats, int rounds, bool with_model, const Ref& ref4,
                ThreadPool& pool) {
  std::vector<Q4PrefillPath> paths = {Q4PrefillPath::kFp32Panel};
  std::vector<float> xa(pm * k), ya(pm * n);
  for (size_t i = 0; i < xa.size(); ++i) xa[i] = std::sin(0.37 * i);
  for (Q4PrefillPath p : {Q4PrefillPath::kVnniInt8, Q4PrefillPath::kAmxInt8, Q4PrefillPath::kAmxInt8Model})
    if ((p != Q4PrefillPath::kAmxInt8Model || with_model) &&
        gemm_q4_prefill(xa.data(), 1, k, ref4(0), ya.data(), n, nullptr, p))
      paths.push_back(p);
  std::vector<std::vector<double>> t(paths.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t j = 0; j < paths.size(); ++j) {
      const size_t p = (j + r) % paths.size();
      const double t0 = now();
      if (!gemm_q4_prefill(xa.data(), pm, k, ref4(r % mats), ya.data(), n, &pool, paths[p])) return false;
      t[p].push_back(now() - t0);
    }
  std::printf("q4 prefill GEMM (group 32) M=%lld N=%lld K=%lld, %d rounds; gemm_xwt takes %s here\n",
              (long long)pm, (long long)n, (long long)k, rounds, q4_prefill_path_name(q4_prefill_path()));
  for (size_t p = 0; p < paths.size(); ++p) {
    std::vector<double> gw, gf, ratio;
    for (int r = 0; r < rounds; ++r) {
      gw.push_back(double(n) * k / t[p][r] / 1e9);
      gf.push_back(2.0 * pm * n * k / t[p][r] / 1e9);
      ratio.push_back(t[0][r] / t[p][r]);
    }
    std::printf("  %-15s %s G weights/s, %s GFLOP/s, %s x the fp32 panel path%s\n",
                q4_prefill_path_name(paths[p]), spread(gw).c_str(), spread(gf).c_str(), spread(ratio).c_str(),
                paths[p] == Q4PrefillPath::kAmxInt8Model ? " (scalar model of the tiles: no speed)" : "");
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, rounds = 7;
  int64_t n = 1408, k = 2048, mats = 192, pm = 0, dm = 1;
  bool q4_model = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "unknown or incomplete argument %s\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--threads")
      threads = std::stoi(v);
    else if (a == "--rounds")
      rounds = std::stoi(v);
    else if (a == "--n")
      n = std::stoll(v);
    else if (a == "--k")
      k = std::stoll(v);
    else if (a == "--mats")
      mats = std::stoll(v);
    else if (a == "--m")
      dm = std::max<int64_t>(1, std::stoll(v));
    else if (a == "--prefill-m")
      pm = std::stoll(v);
    else if (a == "--q4-model")
      q4_model = v != "0";
    else if (a == "--isa")
      set_cpu_isa(v == "portable" ? CpuIsa::kPortable : v == "avx2" ? CpuIsa::kAvx2 : CpuIsa::kAvx512);
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  const size_t per = static_cast<size_t>(n * k);
  std::vector<uint8_t> q(per * mats);
  std::mt19937 rng(7);
  for (size_t i = 0; i < q.size(); i += 4) {
    const uint32_t r = rng() & 0x7e7e7e7eu;  // never 0x7f / 0xff (NaN)
    std::memcpy(&q[i], &r, std::min<size_t>(4, q.size() - i));
  }
  const int64_t kb = (k + 127) / 128;
  std::vector<float> s(((n + 127) / 128) * kb, 1e-3f);
  std::vector<float> x(k, 0.5f), y(n);
  ThreadPool pool(threads);
  auto ref = [&](int64_t m) {
    WeightRef w;
    w.type = moert::DType::kF8E4M3;
    w.data = q.data() + per * m;
    w.n = n;
    w.k = k;
    w.ld = k;
    w.scale = s.data();
    w.scale_ld = kb;
    return w;
  };
  std::printf("isa %s, %d threads, %lld matrices of %lld x %lld fp8 (%.0f MB)\n", cpu_isa_name(cpu_isa()),
              threads, (long long)mats, (long long)n, (long long)k, q.size() / 1e6);
  // The same matrices in moert_q4 (random codes, group 32, fp16 scale and offset per group): the 4-bit
  // expert format's decode kernel over the same weights, alternated with the FP8 one in each round.
  const int64_t groups = k / 32;
  std::vector<uint8_t> q4(per / 2 * mats);
  for (size_t i = 0; i < q4.size(); ++i) q4[i] = static_cast<uint8_t>(rng());
  std::vector<uint16_t> q4s(static_cast<size_t>(n * groups * mats), 0x1400), q4m(q4s.size(), 0x9400);
  auto ref4 = [&](int64_t m) {
    WeightRef w;
    w.type = DType::kQ4;
    w.data = q4.data() + per / 2 * m;
    w.n = n;
    w.k = k;
    w.ld = k;
    w.q4_scale = q4s.data() + n * groups * m;
    w.q4_min = q4m.data() + n * groups * m;
    w.q4_ld = groups;
    w.group = 32;
    return w;
  };
  if (pm > 0) {  // FP8-activation GEMM at M = pm: each matrix path against quantise-dequantise + fp32 kernel
    std::vector<float> xa(pm * k), ya(pm * n), xq(pm * k);
    for (size_t i = 0; i < xa.size(); ++i) xa[i] = std::sin(0.37 * i);
    const double flop = 2.0 * pm * n * k;
    struct MatPath {
      bool avx512;
      AmxUse amx;
    };
    std::vector<MatPath> paths;
    const bool avx512 = cpu_isa() == CpuIsa::kAvx512;  // a lowered --isa turns the matrix paths off
    if (avx512 && amx_ready()) paths.push_back({false, AmxUse::kAuto});
    if (avx512 && cpu_matmul_features().avx512_bf16) paths.push_back({true, AmxUse::kOff});
    if (paths.empty())
      std::printf("fp8-activation GEMM: no matrix path on this CPU (%s)\n", cpu_matmul_path());
    for (const MatPath& p : paths) {
      set_cpu_matmul(p.avx512);
      set_amx_use(p.amx);
      std::vector<double> on, off;
      for (int r = 0; r < rounds; ++r) {  // alternating, so drifting machine load hits both
        double t0 = now();
        if (!gemm_xwt_fp8act(xa.data(), pm, k, ref(r % mats), ya.data(), n, &pool)) return 1;
        on.push_back(flop / (now() - t0) / 1e9);
        t0 = now();
        xq = xa;
        act_quant_dequant(xq.data(), pm, k, k);
        gemm_xwt(xq.data(), pm, k, ref(r % mats), ya.data(), n, &pool);
        off.push_back(flop / (now() - t0) / 1e9);
      }
      std::printf(
          "fp8-activation GEMM M=%lld N=%lld K=%lld: %s %.1f GFLOP/s, fp32 kernel %.1f GFLOP/s (medians), "
          "%.2fx\n",
          (long long)pm, (long long)n, (long long)k, cpu_matmul_path(), median(on), median(off),
          median(on) / median(off));
    }
    set_cpu_matmul(false);
    set_amx_use(AmxUse::kAuto);
    if (avx512 &&
        amx_ready()) {  // fp32 activations (the default numerics): x in three bf16 terms on the tiles
      std::vector<double> on, off;
      for (int r = 0; r < rounds; ++r) {
        double t0 = now();
        if (!gemm_xwt_amx(xa.data(), pm, k, ref(r % mats), ya.data(), n, &pool)) return 1;
        on.push_back(flop / (now() - t0) / 1e9);
        t0 = now();
        gemm_xwt(xa.data(), pm, k, ref(r % mats), ya.data(), n, &pool);
        off.push_back(flop / (now() - t0) / 1e9);
      }
      std::printf(
          "fp32-activation GEMM M=%lld N=%lld K=%lld: amx-bf16 (x in 3 terms) %s GFLOP/s, fp32 kernel %s "
          "GFLOP/s, %.2fx\n",
          (long long)pm, (long long)n, (long long)k, spread(on).c_str(), spread(off).c_str(),
          median(on) / median(off));
    }
    return prefill_q4(pm, n, k, mats, rounds, q4_model, ref4, pool) ? 0 : 1;
  }
  x.assign(static_cast<size_t>(dm * k), 0.5f);
  y.assign(static_cast<size_t>(dm * n), 0.0f);
  const bool both = cpu_isa() == CpuIsa::kAvx512 && cpu_vbmi_supported();
  const bool both4 = cpu_isa() == CpuIsa::kAvx512 && q4_int8_supported();
  std::vector<double> st, cold4[2], cold[2],
      hot[2];  // [0]: widening conversion / fp32 q4, [1]: lookup / int8
  for (int r = 0; r < rounds; ++r) {
    st.push_back(stream_read(q.data(), q.size(), threads));
    for (int pass = 0; pass < (both ? 2 : 1); ++pass) {
      const bool lut = both ? ((pass + r) % 2 == 1) : (cpu_isa() == CpuIsa::kAvx512 && cpu_vbmi());
      set_cpu_vbmi(lut);
      double t0 = now();
      for (int64_t m = 0; m < mats; ++m) gemm_xwt(x.data(), dm, k, ref(m), y.data(), n, &pool);
      cold[lut].push_back(q.size() / (now() - t0) / 1e9);
      const WeightRef w0 = ref(0);
      const int reps = 64;
      gemm_xwt(x.data(), dm, k, w0, y.data(), n, &pool);
      t0 = now();
      for (int i = 0; i < reps; ++i) gemm_xwt(x.data(), dm, k, w0, y.data(), n, &pool);
      hot[lut].push_back(per * reps / (now() - t0) / 1e9);
    }
    for (int pass = 0; k % 32 == 0 && pass < (both4 ? 2 : 1); ++pass) {
      const bool int8 = both4 ? ((pass + r) % 2 == 1) : q4_int8_enabled();
      set_q4_int8(int8);
      const double t0 = now();
      for (int64_t m = 0; m < mats; ++m) gemm_xwt(x.data(), dm, k, ref4(m), y.data(), n, &pool);
      cold4[int8].push_back(q.size() / (now() - t0) / 1e9);  // weights (G/s), as the FP8 figure's bytes are
    }
  }
  const double ms = median(st);
  std::printf("streaming read %s GB/s\n", spread(st).c_str());
  double mc = 0;
  for (int lut = 1; lut >= 0; --lut) {
    if (cold[lut].empty()) continue;
    if (mc == 0) mc = median(cold[lut]);
    std::printf("M=%lld gemm, %s: cold %s GB/s (%.3f of streaming); hot (L2) %s GB/s\n", (long long)dm,
                lut ? "e4m3 table lookup" : "widening e4m3 conversion", spread(cold[lut]).c_str(),
                median(cold[lut]) / ms, spread(hot[lut]).c_str());
  }
  if (both) {
    std::vector<double> rc, rh;  // per-round ratios lookup / widening
    for (int r = 0; r < rounds; ++r) {
      rc.push_back(cold[1][r] / cold[0][r]);
      rh.push_back(hot[1][r] / hot[0][r]);
    }
    std::printf("lookup / widening, medians of per-round ratios: cold %s, hot %s\n", spread(rc).c_str(),
                spread(rh).c_str());
  }
  for (int int8 = 1; int8 >= 0; --int8)
    if (!cold4[int8].empty())
      std::printf(
          "the same weights in moert_q4 (group 32), %s kernel, M=%lld cold: %s G weights/s = %.2fx FP8's "
          "%.2f\n",
          int8 ? "int8-activation" : "fp32", (long long)dm, spread(cold4[int8]).c_str(),
          median(cold4[int8]) / mc, mc);
  if (both4) {
    std::vector<double> r4;
    for (int r = 0; r < rounds; ++r) r4.push_back(cold4[1][r] / cold4[0][r]);
    std::printf("q4 int8 / fp32 kernel, median of per-round ratios: %s\n", spread(r4).c_str());
  }
  return 0;
}
