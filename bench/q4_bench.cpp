// moert_q4 against the checkpoint it was made from, in one run.
//
// usage: moert_q4_bench [--model DIR] [--group-size 32] [--threads 2] [--speed-model DIR] [--speed-q4 DIR]
//                       [--decode 64] [--depth 16] [--repeat 5] [--no-fidelity] [--no-speed] [--help]
// Fidelity (--model, default the shipped moert-tiny-coder, which has reference.safetensors): the model is
// quantised into a temporary directory twice, with the least-squares search (what `moert quantize` writes)
// and with plain round-to-nearest, and each is compared with the original: per reference prompt, the
// greedy tokens that match transformers' continuation before the first difference (llama.cpp's count),
// and, teacher-forced over prompt + reference continuation, top-1 agreement with the original's logits and
// the max and mean absolute logit error, token by token (the decode kernels) and in one prefill of the whole
// sequence (the prefill kernels); also the expert weights' relative RMS error.
// Speed (--speed-model, default --model; e.g. the wide random model of moert_model_bench --generate-wide):
// decode tokens/s of the original and of its q4 copy (--speed-q4: one made before, e.g. by moert quantize;
// else quantised here) after a --depth-token prompt, runs alternated, medians.
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"
#include "checkpoint/checkpoint_quantize.h"
#include "config/model_config.h"
#include "cpu/dequant.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

using namespace moert;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage =
    "usage: moert_q4_bench [--model DIR] [--group-size 32] [--threads 2] [--speed-model DIR] [--speed-q4 "
    "DIR]\n"
    "                      [--decode 64] [--depth 16] [--repeat 5] [--no-fidelity] [--no-speed] [--help]\n";

const std::set<std::string> kValued = {"--model",    "--group-size", "--threads", "--speed-model",
                                       "--speed-q4", "--decode",     "--depth",   "--repeat"};
const std::set<std::string> kSwitches = {"--no-fidelity", "--no-speed", "--help", "-h"};

void check_args(int argc, char** argv) {
  bench::check_args(argc, argv, "moert_q4_bench", kUsage, kValued, kSwitches);
}
using bench::arg;
using bench::flag;
using bench::int_arg;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Loaded {
  ModelConfig cfg;
  std::shared_ptr<WeightStore> store;
  std::unique_ptr<DeepseekNetwork> model;
  std::unique_ptr<LatentCache> cache;
  Loaded(const std::string& dir, Backend& b, int64_t tokens) {
    cfg = load_model_config(dir);
    store = std::make_shared<WeightStore>(dir);
    model = std::make_unique<DeepseekNetwork>(cfg, store, b, ModelOptions{});
    cache = std::make_unique<LatentCache>(
        b, model->cache_layers(), cfg.kv_cache_width(), 64,
        (tokens + 128) * cfg.kv_cache_width() * 4 * model->cache_layers() + (1 << 20));
  }
};

struct Fidelity {
  std::vector<int> kept;
  int64_t positions = 0, top1 = 0;
  double max_err = 0, sum_err = 0;
  // The same positions teacher-forced in one prefill per prompt (every row at once: the prefill kernels).
  int64_t prefill_top1 = 0;
  double prefill_max_err = 0, prefill_sum_err = 0;
};

// Greedy tokens kept per prompt, then teacher-forced logits against the original's over prompt + reference.
Fidelity compare(Loaded& base, Loaded& q, const SafetensorsFile& ref) {
  Fidelity f;
  const int64_t V = base.cfg.vocab_size;
  std::vector<float> lb(V), lq(V);
  for (int p = 0; ref.tensors().count("prompt" + std::to_string(p) + ".ids"); ++p) {
    const TensorInfo& ti = ref.tensors().at("prompt" + std::to_string(p) + ".ids");
    const TensorInfo& tg = ref.tensors().at("prompt" + std::to_string(p) + ".greedy");
    const int32_t* ids = reinterpret_cast<const int32_t*>(ti.data);
    const int32_t* want = reinterpret_cast<const int32_t*>(tg.data);
    {
      KvSequence kv(q.cache.get());
      std::vector<int32_t> prompt(ids, ids + ti.numel());
      std::vector<SequenceStep> s{{&kv, prompt.data(), ti.numel(), false}};
      q.model->forward(s, lq.data());
      int kept = 0;
      for (int64_t i = 0; i < tg.numel(); ++i) {
        int32_t t = argmax(lq);
        if (t != want[i]) break;
        ++kept;
        std::vector<SequenceStep> one{{&kv, &t, 1, false}};
        q.model->forward(one, lq.data());
      }
      f.kept.push_back(kept);
    }
    std::vector<int32_t> seq(ids, ids + ti.numel());
    seq.insert(seq.end(), want, want + tg.numel());
    KvSequence kb(base.cache.get()), kq(q.cache.get());
    for (size_t i = 0; i < seq.size(); ++i) {
      int32_t t = seq[i];
      std::vector<SequenceStep> sb{{&kb, &t, 1, false}}, sq{{&kq, &t, 1, false}};
      base.model->forward(sb, lb.data());
      q.model->forward(sq, lq.data());
      if (static_cast<int64_t>(i) + 1 < ti.numel()) continue;  // score the positions that predict output
      ++f.positions;
      f.top1 += argmax(lb) == argmax(lq);
      for (int64_t v = 0; v < V; ++v) {
        const double e = std::fabs(static_cast<double>(lb[v]) - lq[v]);
        f.max_err = std::max(f.max_err, e);
        f.sum_err += e;
      }
    }
    KvSequence pb(base.cache.get()), pq(q.cache.get());
    const int64_t len = static_cast<int64_t>(seq.size());
    std::vector<float> all_b(static_cast<size_t>(len * V)), all_q(all_b.size());
    std::vector<SequenceStep> sb{{&pb, seq.data(), len, true}}, sq{{&pq, seq.data(), len, true}};
    base.model->forward(sb, all_b.data());
    q.model->forward(sq, all_q.data());
    for (int64_t i = ti.numel() - 1; i < len; ++i) {
      const float* b = all_b.data() + i * V;
      const float* r = all_q.data() + i * V;
      f.prefill_top1 += std::max_element(b, b + V) - b == std::max_element(r, r + V) - r;
      for (int64_t v = 0; v < V; ++v) {
        const double e = std::fabs(static_cast<double>(b[v]) - r[v]);
        f.prefill_max_err = std::max(f.prefill_max_err, e);
        f.prefill_sum_err += e;
      }
    }
  }
  f.sum_err /= static_cast<double>(std::max<int64_t>(1, f.positions) * V);
  f.prefill_sum_err /= static_cast<double>(std::max<int64_t>(1, f.positions) * V);
  return f;
}

// A checkpoint matrix as the kernels see it (FP8 with its scales, bf16/f16/f32, or q4 with its groups).
kernels::WeightRef weight_ref(const WeightStore& st, const std::string& name) {
  const TensorInfo& t = *st.find(name);
  kernels::WeightRef r;
  r.data = t.data;
  r.n = t.shape[0];
  r.k = t.shape[1];
  r.ld = r.k;
  switch (t.dtype) {
    case DType::kU8: {
      const TensorInfo& sc = *st.find(name + "_scale");
      r.type = DType::kQ4;
      r.k = 2 * t.shape[1];
      r.ld = r.k;
      r.q4_scale = reinterpret_cast<const uint16_t*>(sc.data);
      r.q4_min = reinterpret_cast<const uint16_t*>(st.find(name + "_min")->data);
      r.q4_ld = sc.shape[1];
      r.group = r.k / sc.shape[1];
      break;
    }
    case DType::kF8E4M3: {
      const TensorInfo& sc = *st.find(name + "_scale_inv");
      r.type = DType::kF8E4M3;
      r.scale = reinterpret_cast<const float*>(sc.data);
      r.scale_ld = sc.shape[1];
      break;
    }
    default:
      r.type = t.dtype;  // bf16, f16 or f32: the kernels' weight types are the checkpoint's
  }
  return r;
}

// sqrt(sum (w - q)^2 / sum w^2) over every expert weight the q4 copy holds.
double weight_rel_rms(const WeightStore& orig, const WeightStore& q4) {
  double num = 0, den = 0;
  std::vector<float> a, b;
  for (const auto& [name, t] : q4.tensors_by_name()) {
    if (t->dtype != DType::kU8) continue;
    const kernels::WeightRef ro = weight_ref(orig, name), rq = weight_ref(q4, name);
    a.resize(ro.k);
    b.resize(ro.k);
    for (int64_t r = 0; r < ro.n; ++r) {
      kernels::dequant_row(ro, r, 0, ro.k, a.data());
      kernels::dequant_row(rq, r, 0, rq.k, b.data());
      for (int64_t c = 0; c < ro.k; ++c) {
        num += (static_cast<double>(a[c]) - b[c]) * (static_cast<double>(a[c]) - b[c]);
        den += static_cast<double>(a[c]) * a[c];
      }
    }
  }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

double decode_rate(Loaded& m, const std::vector<int32_t>& prompt, int decode) {
  std::vector<float> logits(m.cfg.vocab_size);
  KvSequence kv(m.cache.get());
  std::vector<int32_t> p = prompt;
  std::vector<SequenceStep> s{{&kv, p.data(), static_cast<int64_t>(p.size()), false}};
  m.model->forward(s, logits.data());
  auto t0 = Clock::now();
  for (int i = 0; i < decode; ++i) {
    int32_t t = argmax(logits);
    std::vector<SequenceStep> one{{&kv, &t, 1, false}};
    m.model->forward(one, logits.data());
  }
  return decode / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  check_args(argc, argv);
  const std::string dir = arg(argc, argv, "--model", MOERT_DEFAULT_MODEL_DIR);
  const std::string speed_dir = arg(argc, argv, "--speed-model", dir);
  const int group = int_arg(argc, argv, "--group-size", 32);
  const int threads = std::max(1, int_arg(argc, argv, "--threads", 2));
  const int decode = std::max(1, int_arg(argc, argv, "--decode", 64));
  const int depth = std::max(1, int_arg(argc, argv, "--depth", 16));
  const int repeat = std::max(1, int_arg(argc, argv, "--repeat", 5));
  const std::string tmp =
      std::filesystem::temp_directory_path().string() + "/moert_q4_bench_" + std::to_string(getpid());
  auto backend = make_cpu_backend(threads);
  try {
    if (!flag(argc, argv, "--no-fidelity")) {
      const std::string refp = dir + "/reference.safetensors";
      if (!std::filesystem::exists(refp)) {
        std::fprintf(stderr, "moert_q4_bench: %s has no reference.safetensors\n", dir.c_str());
        return 2;
      }
      SafetensorsFile ref(refp);
      Loaded base(dir, *backend, 256);
      std::printf("model %s, group size %d, %d threads\n", dir.c_str(), group, threads);
      for (Q4Search search : {Q4Search::kRmse, Q4Search::kNearest}) {
        QuantizeSpec spec;
        spec.group = group;
        spec.search = search;
        const std::string out = tmp + (search == Q4Search::kRmse ? "_rmse" : "_nearest");
        auto t0 = Clock::now();
        quantize_checkpoint(dir, out, spec);
        const double qs = seconds_since(t0);
        double rms = 0;
        Fidelity f;
        {
          Loaded q(out, *backend, 256);
          f = compare(base, q, ref);
          rms = weight_rel_rms(*base.store, *q.store);
        }
        std::printf("%s (quantised in %.1f s; expert weights' relative RMS error %.4f): greedy tokens kept",
                    search == Q4Search::kRmse ? "q4, least-squares search" : "q4, round to nearest", qs, rms);
        for (size_t i = 0; i < f.kept.size(); ++i) std::printf("%s%d", i ? "/" : " ", f.kept[i]);
        std::printf(" of 48; top-1 agreement %lld/%lld (%.1f%%); logit error max %.4f mean %.5f",
                    (long long)f.top1, (long long)f.positions,
                    100.0 * f.top1 / std::max<int64_t>(1, f.positions), f.max_err, f.sum_err);
        std::printf("; in one prefill: top-1 %lld/%lld (%.1f%%), logit error max %.4f mean %.5f\n",
                    (long long)f.prefill_top1, (long long)f.positions,
                    100.0 * f.prefill_top1 / std::max<int64_t>(1, f.positions), f.prefill_max_err,
                    f.prefill_sum_err);
        std::fflush(stdout);
        std::filesystem::remove_all(out);
      }
    }
    if (!flag(argc, argv, "--no-speed")) {
      QuantizeSpec spec;
      spec.group = group;
      const std::string given = arg(argc, argv, "--speed-q4", "");
      const std::string out = given.empty() ? tmp + "_speed" : given;
      if (given.empty()) {
        auto t0 = Clock::now();
        quantize_checkpoint(speed_dir, out, spec);
        std::printf("speed model %s quantised in %.1f s (group %d)\n", speed_dir.c_str(), seconds_since(t0),
                    group);
      }
      {
        Loaded base(speed_dir, *backend, depth + decode);
        Loaded q(out, *backend, depth + decode);
        std::vector<int32_t> prompt(depth);
        uint32_t x = 12345;
        for (int32_t& t : prompt)
          t = static_cast<int32_t>((x = x * 1664525u + 1013904223u) >> 8) % base.cfg.vocab_size;
        std::vector<double> rb, rq, ratio;
        decode_rate(base, prompt, 4);  // warm both mappings
        decode_rate(q, prompt, 4);
        for (int r = 0; r < repeat; ++r) {
          // Alternated, the order flipped each round, so drift in the machine's load hits both alike.
          const double b1 = r % 2 ? 0 : decode_rate(base, prompt, decode);
          const double q1 = decode_rate(q, prompt, decode);
          const double b2 = r % 2 ? decode_rate(base, prompt, decode) : b1;
          rb.push_back(b2);
          rq.push_back(q1);
          ratio.push_back(q1 / b2);
        }
        std::printf(
            "decode %d tokens after a %d-token prompt, %d threads, medians of %d alternated runs: "
            "original %.1f tok/s [%.1f-%.1f], q4 %.1f tok/s [%.1f-%.1f], q4 / original %.2fx\n",
            decode, depth, threads, repeat, median(rb), *std::min_element(rb.begin(), rb.end()),
            *std::max_element(rb.begin(), rb.end()), median(rq), *std::min_element(rq.begin(), rq.end()),
            *std::max_element(rq.begin(), rq.end()), median(ratio));
      }
      if (given.empty()) std::filesystem::remove_all(out);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moert_q4_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
