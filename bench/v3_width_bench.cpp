// The model benchmark at DeepSeek-V3's width, for the CUDA backend (scripts/gpu_check.sh) and the CPU's:
// a random FP8 checkpoint of V3's shape (hidden 7168, 256 routed experts of 2048 in 8 groups, top-8, one
// shared expert, 128 heads, q_lora 1536, kv_lora 512, vocab 129280; 3 layers: 1 dense + 2 MoE; 27 GB) is
// written once to --dir (block seeds, on every core: seconds, not minutes) and loaded on the backend. Then:
//  - decode ms/step at each --batches size, every sequence at --context tokens (prefilled first), as the
//    engine steps: one batch, graphs where the backend has them, greedy sampling on the device. Beside it the
//    memory floor: the bytes a step must read (every weight it touches, the experts the batch routes to
//    expected under uniform routing, the cache) over the backend's streaming bandwidth measured in the same
//    run (an add over 256 MiB tensors);
//  - prefill tokens/s for 1 and 2 sequences of --prefill tokens in one forward;
//  - per-op times (each op synchronised, by an OpProfiler; graphs off) of a decode step at the smallest and
//    the largest batch and of the one-sequence prefill, and the latent attention's bandwidth.
// A step whose logits are not finite stops the run (exit 1): the figures only count for a working model.
// Without a CUDA device --backend cuda prints why and exits 0. --shape small is a 30 MB model of the same
// structure, for the CPU (its ctest runs it).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/sampling.h"
#include "bench_args.h"
#include "bench_stats.h"
#include "checkpoint/random_checkpoint.h"
#include "config/model_config.h"
#include "decode_weight_bytes.h"
#include "kv/latent_cache.h"
#include "model/deepseek_network.h"
#include "util/error.h"
#include "weights/weight_store.h"

using namespace moert;

namespace {

const char* kUsage =
    "usage: moert_v3_width_bench [--backend cuda|cpu] [--shape v3|small] [--dir DIR] [--keep]\n"
    "                            [--context 1024] [--batches 1,16,64,128] [--prefill 1024] [--steps 20]\n"
    "                            [--repeat 3] [--activations fp8|fp32] [--act-dtype auto|bf16|fp32]\n"
    "                            [--threads N] [--no-graphs] [--no-profile]\n"
    "  --dir: where the checkpoint is written (kept and reused with --keep; default /dev/shm/moert-<shape>\n"
    "  when /dev/shm exists, else the temp dir). --act-dtype auto: bf16 where the backend has it (and the\n"
    "  cache bf16 with it), else fp32. --threads: the CPU backend's threads and the writer's (0: every "
    "core).\n";

const std::set<std::string> kValued = {"--backend",     "--shape",     "--dir",    "--context",
                                       "--batches",     "--prefill",   "--steps",  "--repeat",
                                       "--activations", "--act-dtype", "--threads"};
const std::set<std::string> kSwitches = {"--keep", "--no-graphs", "--no-profile"};

using bench::Clock;
using bench::Stats;
using bench::stats;

RandomCheckpointSpec shape_spec(const std::string& shape) {
  RandomCheckpointSpec s;
  s.layers = 3, s.dense_layers = 1, s.mtp = 0, s.shared = 1, s.fp8 = true, s.seed = 7;
  if (shape == "v3") {
    s.vocab = 129280, s.hidden = 7168, s.intermediate = 18432, s.moe_intermediate = 2048, s.heads = 128;
    s.q_lora = 1536, s.kv_lora = 512, s.nope = 128, s.rope = 64, s.vdim = 128;
    s.experts = 256, s.top_k = 8, s.n_group = 8, s.topk_group = 4;
  } else {  // small: the same structure, 1/14 of the width
    s.vocab = 4096, s.hidden = 512, s.intermediate = 1280, s.moe_intermediate = 256, s.heads = 8;
    s.q_lora = 384, s.kv_lora = 128, s.nope = 64, s.rope = 32, s.vdim = 64;
    s.experts = 32, s.top_k = 4, s.n_group = 4, s.topk_group = 2;
  }
  s.block_seeds = true;
  return s;
}

std::vector<int> parse_list(const std::string& v) {
  std::vector<int> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long x = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end || x <= 0) {
      std::fprintf(stderr, "moert_v3_width_bench: --batches wants positive integers, got '%s'\n", v.c_str());
      std::exit(2);
    }
    out.push_back(static_cast<int>(x));
  }
  return out;
}

// Per-op times summed by op (a GEMM-like op also by its weight's shape, named from the config).
class OpTable final : public OpProfiler {
 public:
  explicit OpTable(const ModelConfig& c) {
    const int64_t H = c.hidden_size, heads = c.num_attention_heads;
    const int64_t sh = c.moe_intermediate_size * c.n_shared_experts;
    linear_ = {{{c.q_lora_rank, H}, "q_a_proj"},
               {{heads * (c.qk_nope_head_dim + c.qk_rope_head_dim), c.q_lora_rank}, "q_b_proj"},
               {{c.kv_lora_rank + c.qk_rope_head_dim, H}, "kv_a_proj"},
               {{heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, "kv_b_proj"},
               {{H, heads * c.v_head_dim}, "o_proj"},
               {{c.intermediate_size, H}, "dense gate/up"},
               {{H, c.intermediate_size}, "dense down"},
               {{sh, H}, "shared gate/up"},
               {{H, sh}, "shared down"},
               {{c.n_routed_experts, H}, "router"},
               {{c.vocab_size, H}, "lm_head"}};
    experts_ = {{{c.moe_intermediate_size, H}, "gate/up"}, {{H, c.moe_intermediate_size}, "down"}};
  }
  void record(const char* op, int64_t rows, int64_t n, int64_t k, double seconds) override {
    std::string key = op;
    if (n > 0) {
      const auto& names = key == "moe_expert_linear" ? experts_ : linear_;
      auto it = names.find({n, k});
      key += " " + (it != names.end() ? it->second + " " : std::string()) + "[" + std::to_string(n) + " x " +
             std::to_string(k) + "]";
    }
    Entry& e = ops_[key];
    ++e.calls;
    e.rows += rows;
    e.seconds += seconds;
  }
  void clear() { ops_.clear(); }
  bool empty() const { return ops_.empty(); }
  double seconds(const std::string& op) const {
    double s = 0;
    for (const auto& [k, e] : ops_)
      if (k == op || k.rfind(op + " ", 0) == 0) s += e.seconds;
    return s;
  }
  int64_t calls(const std::string& op) const {
    auto it = ops_.find(op);
    return it == ops_.end() ? 0 : it->second.calls;
  }
  // The table, per step (`per` steps were profiled), the slowest first.
  void print(const char* title, int per) const {
    double total = 0;
    for (const auto& [k, e] : ops_) total += e.seconds;
    std::printf("per-op times, %s (each op synchronised; %.3f ms/step in all):\n", title, 1e3 * total / per);
    std::vector<std::pair<std::string, Entry>> v(ops_.begin(), ops_.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
    for (const auto& [k, e] : v)
      std::printf("  op %-48s %8.3f ms/step %5.1f%%  calls/step %4.1f  rows/call %7.1f\n", k.c_str(),
                  1e3 * e.seconds / per, 100.0 * e.seconds / std::max(total, 1e-12),
                  static_cast<double>(e.calls) / per,
                  static_cast<double>(e.rows) / std::max<int64_t>(1, e.calls));
  }

 private:
  struct Entry {
    int64_t calls = 0, rows = 0;
    double seconds = 0;
  };
  std::map<std::pair<int64_t, int64_t>, std::string> linear_, experts_;  // names by [n, k]
  std::map<std::string, Entry> ops_;
};

// The backend's streaming bandwidth: y += x over two F32 tensors of 256 MiB (3 x 256 MiB moved), median of 5.
double streaming_gbs(Backend& b) {
  const int64_t rows = 16384, cols = 4096;  // 64 Mi floats
  Tensor x = b.empty(DType::kF32, rows, cols), y = b.empty(DType::kF32, rows, cols);
  b.fill_zero(x);
  b.fill_zero(y);
  b.add(x, y);
  b.synchronize();
  std::vector<double> gbs;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    b.add(x, y);
    b.synchronize();
    gbs.push_back(3.0 * rows * cols * 4 / bench::seconds_since(t0) / 1e9);
  }
  return stats(gbs).median;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint32_t x = seed * 2654435761u + 12345u;
  for (int32_t& v : t) v = static_cast<int32_t>((x = x * 1664525u + 1013904223u) >> 8) % vocab;
  return t;
}

int run(int argc, char** argv) {
  bench::check_args(argc, argv, "moert_v3_width_bench", kUsage, kValued, kSwitches);
  const std::string backend_name = bench::arg(argc, argv, "--backend", "cuda");
  const std::string shape = bench::arg(argc, argv, "--shape", "v3");
  const std::string act = bench::arg(argc, argv, "--activations", "fp8");
  const std::string act_dtype = bench::arg(argc, argv, "--act-dtype", "auto");
  if ((backend_name != "cuda" && backend_name != "cpu") || (shape != "v3" && shape != "small") ||
      (act != "fp8" && act != "fp32") ||
      (act_dtype != "auto" && act_dtype != "bf16" && act_dtype != "fp32")) {
    std::fprintf(stderr, "moert_v3_width_bench: bad --backend, --shape, --activations or --act-dtype\n%s",
                 kUsage);
    return 2;
  }
  const int context = std::max(1, bench::int_arg(argc, argv, "--context", 1024));
  const int prefill = std::max(1, bench::int_arg(argc, argv, "--prefill", 1024));
  const int steps = std::max(1, bench::int_arg(argc, argv, "--steps", 20));
  const int repeat = std::max(1, bench::int_arg(argc, argv, "--repeat", 3));
  const int threads = bench::int_arg(argc, argv, "--threads", 0);
  const std::vector<int> batches = parse_list(bench::arg(argc, argv, "--batches", "1,16,64,128"));
  const bool keep = bench::flag(argc, argv, "--keep");
  std::string dir = bench::arg(argc, argv, "--dir", "");
  if (dir.empty())
    dir = (std::filesystem::is_directory("/dev/shm") ? std::string("/dev/shm")
                                                     : std::filesystem::temp_directory_path().string()) +
          "/moert-" + shape;

  std::unique_ptr<Backend> backend;
  try {
    backend =
        backend_name == "cuda"
            ? make_cuda_backend(0)
            : make_cpu_backend(threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency()));
  } catch (const Error& e) {
    if (backend_name != "cuda") throw;
    std::printf("moert_v3_width_bench: skipped, no CUDA backend here: %s\n", e.what());
    return 0;
  }
  const bool bf16 = act_dtype == "bf16" || (act_dtype == "auto" && backend->supports_bf16_activations());
  if (bf16) backend->set_act_dtype(DType::kBF16);

  // The checkpoint: reused when --dir holds this shape's (its marker file names it).
  const RandomCheckpointSpec spec = [&] {
    RandomCheckpointSpec s = shape_spec(shape);
    s.threads = threads;
    return s;
  }();
  const std::string marker = dir + "/moert-bench-shape", want = shape + " seed " + std::to_string(spec.seed);
  bool wrote = false;
  {
    std::ifstream in(marker);
    std::string have;
    std::getline(in, have);
    if (have != want || !std::filesystem::exists(dir + "/config.json")) {
      std::filesystem::remove_all(dir);
      const auto t0 = Clock::now();
      write_random_checkpoint(dir, spec);
      std::ofstream(marker) << want << "\n";
      wrote = true;
      std::printf("wrote the %s checkpoint to %s in %.1f s\n", shape.c_str(), dir.c_str(),
                  bench::seconds_since(t0));
    }
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{wrote && !keep ? dir : std::string()};

  const ModelConfig cfg = load_model_config(dir);
  auto store = std::make_shared<WeightStore>(dir);
  ModelOptions opts;
  opts.act_mode = act == "fp8" ? ActMode::kFp8 : ActMode::kF32;
  opts.load_mtp = false;
  opts.graphs = !bench::flag(argc, argv, "--no-graphs");
  const auto t_load = Clock::now();
  DeepseekNetwork model(cfg, store, *backend, opts);
  backend->synchronize();
  std::printf(
      "model: %s shape, hidden %lld, %lld layers (%lld dense), %lld experts of %lld (top-%lld), vocab %lld, "
      "%.2f B parameters; loaded on %s in %.1f s; %s activations, %s between ops\n",
      shape.c_str(), (long long)cfg.hidden_size, (long long)cfg.num_hidden_layers,
      (long long)cfg.first_k_dense_replace, (long long)cfg.n_routed_experts,
      (long long)cfg.moe_intermediate_size, (long long)cfg.num_experts_per_tok, (long long)cfg.vocab_size,
      model.weights().parameter_count / 1e9, backend->name(), bench::seconds_since(t_load), act.c_str(),
      bf16 ? "bf16" : "fp32");

  const double bw = streaming_gbs(*backend);
  std::printf("streaming bandwidth (y += x over 256 MiB, same run): %.1f GB/s\n", bw);

  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const DType cache_dtype = bf16 ? DType::kBF16 : DType::kF32;
  const int64_t width = cfg.kv_cache_width(), layers = model.cache_layers(), page = 64;
  const int64_t esize = bf16 ? 2 : 4;
  const int64_t seq_tokens = context + steps + 8, seq_pages = (seq_tokens + page - 1) / page + 1;
  const int64_t pages = std::max<int64_t>(max_batch * seq_pages, 2 * ((prefill + page - 1) / page + 1)) + 4;
  LatentCache cache(*backend, layers, width, page, pages * page * width * esize * layers, cache_dtype);
  OpTable table(cfg);
  const bool profile = !bench::flag(argc, argv, "--no-profile");
  int failures = 0;

  // Prefill: 1 and 2 sequences of `prefill` tokens in one forward, the last row's logits back.
  std::vector<float> logits(static_cast<size_t>(2 * cfg.vocab_size));
  for (int n : {1, 2}) {
    std::vector<std::vector<int32_t>> tok;
    for (int i = 0; i < n; ++i) tok.push_back(random_tokens(prefill, cfg.vocab_size, 100 + i));
    auto once = [&] {
      std::vector<KvSequence> kv;
      for (int i = 0; i < n; ++i) kv.emplace_back(&cache);
      std::vector<SequenceStep> st;
      for (int i = 0; i < n; ++i) st.push_back({&kv[i], tok[i].data(), prefill});
      const auto t0 = Clock::now();
      model.forward(st, logits.data());
      const double s = bench::seconds_since(t0);
      for (int64_t j = 0; j < n * cfg.vocab_size; ++j)
        if (!std::isfinite(logits[j])) {
          std::printf("prefill %d x %d: logits are not finite\n", n, prefill);
          ++failures;
          break;
        }
      return s;
    };
    once();  // sizes the scratch buffers, loads the kernels
    std::vector<double> tps;
    for (int r = 0; r < repeat; ++r) tps.push_back(n * prefill / once());
    const Stats s = stats(tps);
    std::printf("prefill %d x %d tokens: %.0f tokens/s (min %.0f, max %.0f), %.2f ms\n", n, prefill, s.median,
                s.lo, s.hi, 1e3 * n * prefill / s.median);
    if (profile && n == 1) {
      model.set_graphs(false);
      table.clear();
      backend->set_op_profiler(&table);
      once();
      backend->set_op_profiler(nullptr);
      model.set_graphs(opts.graphs);
      char title[96];
      std::snprintf(title, sizeof title, "prefill 1 x %d", prefill);
      table.print(title, 1);
    }
  }

  // Decode: `batch` sequences at `context` tokens, one token each per step, greedy on the device.
  for (int batch : batches) {
    std::vector<KvSequence> kv;
    for (int i = 0; i < batch; ++i) kv.emplace_back(&cache);
    const int per_forward = std::max(1, 8192 / context);  // prompts prefilled together, ~8k tokens a forward
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < batch; ++i) prompts.push_back(random_tokens(context, cfg.vocab_size, 1000 + i));
    for (int i0 = 0; i0 < batch; i0 += per_forward) {
      std::vector<SequenceStep> st;
      for (int i = i0; i < std::min(batch, i0 + per_forward); ++i)
        st.push_back({&kv[i], prompts[i].data(), context, false, /*no_logits=*/true});
      model.forward(st, nullptr);
    }
    std::vector<int32_t> next(static_cast<size_t>(batch));
    for (int i = 0; i < batch; ++i) next[i] = prompts[i].back();
    std::vector<SamplingRng> rngs(static_cast<size_t>(batch));
    bool finite = true;
    auto step = [&] {
      std::vector<SequenceStep> st;
      std::vector<SampleRow> rows;
      for (int i = 0; i < batch; ++i) {
        st.push_back({&kv[i], &next[i], 1});
        rows.push_back({SamplingParams{}, &rngs[i], nullptr});
      }
      StepBatch b = model.make_batch(st, &rows);
      const Tensor out = model.forward(b);
      std::vector<int32_t> ids(static_cast<size_t>(batch));
      backend->sample(out.slice_rows(0, batch), rows, b.sample_table(), ids.data());
      for (int i = 0; i < batch; ++i) {
        finite &= ids[i] >= 0;
        next[i] = ids[i] >= 0 ? ids[i] : 0;
      }
    };
    for (int i = 0; i < 3; ++i) step();  // eager, captured, replayed
    std::vector<double> ms;
    for (int i = 0; i < steps; ++i) {
      const auto t0 = Clock::now();
      step();  // the sampled ids come back to the host: each step ends synchronised
      ms.push_back(1e3 * bench::seconds_since(t0));
    }
    const Stats s = stats(ms);
    const double wbytes = bench::decode_weight_bytes(*store, cfg, batch);
    const double kvbytes = static_cast<double>(batch) * (context + steps) * width * esize * layers;
    const double floor_ms = 1e3 * (wbytes + kvbytes) / (bw * 1e9);
    std::printf(
        "decode batch %d context %d: %.3f ms/step (min %.3f, max %.3f), %.0f tokens/s; memory floor %.3f ms "
        "(%.2f GB weights + %.3f GB cache at %.1f GB/s), step / floor %.2f\n",
        batch, context, s.median, s.lo, s.hi, 1e3 * batch / s.median, floor_ms, wbytes / 1e9, kvbytes / 1e9,
        bw, s.median / floor_ms);
    if (!finite) {
      std::printf("decode batch %d: a row's logits were not finite\n", batch);
      ++failures;
    }
    if (profile && (batch == batches.front() || batch == max_batch)) {
      const int per = 3;
      model.set_graphs(false);
      table.clear();
      backend->set_op_profiler(&table);
      for (int i = 0; i < per; ++i) step();
      backend->set_op_profiler(nullptr);
      model.set_graphs(opts.graphs);
      char title[96];
      std::snprintf(title, sizeof title, "decode batch %d context %d", batch, context);
      table.print(title, per);
      if (table.empty()) {
        std::printf("the op profiler recorded nothing\n");
        ++failures;
      }
      // The latent attention reads every sequence's cache rows once per layer (plus its queries and output).
      const int64_t calls = table.calls("attention_latent");
      if (calls > 0) {
        const double per_call = table.seconds("attention_latent") / calls;
        const double ctx = kv[0].length();
        const double bytes = batch * (ctx * width * esize + 2.0 * cfg.num_attention_heads * width * esize);
        std::printf(
            "mla decode (attention_latent) batch %d context %.0f: %.1f us per layer, %.1f GB/s = %.2f "
            "of streaming bandwidth\n",
            batch, ctx, 1e6 * per_call, bytes / per_call / 1e9, bytes / per_call / 1e9 / bw);
      }
    }
  }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moert_v3_width_bench: %s\n", e.what());
    return 1;
  }
}
