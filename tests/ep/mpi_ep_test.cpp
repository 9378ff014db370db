// Expert parallelism across processes: run under `mpirun -np N` (N = 2, 4), one EP rank per process over
// the MPI transport (runtime/ep/transport_mpi.h). Checks, on every rank:
//  - the transport: variable-size all-to-all, all-reduce (same bits on every rank), barrier;
//  - the fixtures' logits (tiny-v3-fp8, tiny-v3-bf16, tiny-v2-bf16), each rank running its share of the
//    prompts (prefill, then 8 decode steps; a rank with no prompt left still steps), with and without
//    redundant experts, both combine modes, with and without the two-microbatch overlap: equal to the
//    single-process logits within the bound the in-process EP tests use (tests/ep/ep_logits_test.cpp) and to
//    the reference within 2e-4;
//  - a rank that throws fails every rank (kCancelled naming it) well before the time-out; a rank that
//    stops answering makes the others time out (kTimeout).
// Prints "N passed, N failed" (rank 0; the counts are summed over ranks) and returns nonzero on failure.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ep/expert_parallel.h"
#include "ep/transport_mpi.h"
#include "ep_cases.h"
#include "golden_fixture.h"
#include "util/error.h"

namespace moert {
namespace {

using testing::CaseOut;
using testing::count_cases;
using testing::Golden;
using testing::max_abs_diff;
using testing::max_decode;
using testing::run_share;

using testing::kOverlapTol;
using testing::kPartialTol;
using testing::kRefTol;

int g_rank = 0, g_size = 1, g_passed = 0, g_failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("[rank %d] FAILED: %s\n", g_rank, what.c_str());
    std::fflush(stdout);
  }
}

// One process, one prompt at a time (as the golden tests run them), for the cases `mine`.
std::vector<CaseOut> single(Golden& g, const std::vector<int>& mine) {
  std::vector<CaseOut> out(count_cases(g));
  for (int c : mine) {
    LatentCache cache = g.cache();
    run_share(*g.model, cache, g, {c}, out);
  }
  return out;
}

// This process's EP rank over the fixture.
struct Rank {
  ModelConfig cfg;
  std::unique_ptr<Backend> backend;
  std::shared_ptr<ep::ExpertParallel> ep;
  std::unique_ptr<DeepseekNetwork> model;
  std::unique_ptr<LatentCache> cache;

  Rank(const std::string& dir, int redundant, ep::EpOptions eo, ep::MpiOptions mo = {}) {
    cfg = load_model_config(dir);
    auto store = std::make_shared<WeightStore>(dir);
    auto t = ep::make_mpi_transport(mo);
    backend = make_cpu_backend(1);
    ep::Placement p = ep::contiguous_placement(cfg.num_hidden_layers + cfg.num_nextn_predict_layers,
                                               cfg.n_routed_experts, t->size(), redundant);
    ep = std::make_shared<ep::ExpertParallel>(t, *backend, p, eo);
    ModelOptions o;
    o.moe_hook = ep;
    o.bind_expert = ep->bind_filter();
    model = std::make_unique<DeepseekNetwork>(cfg, store, *backend, o);
    cache =
        std::make_unique<LatentCache>(*backend, model->cache_layers(), cfg.kv_cache_width(), 16, 64 << 20);
  }
};

std::vector<int> my_cases(const Golden& g) {
  std::vector<int> mine;
  for (int c = g_rank; c < count_cases(g); c += g_size) mine.push_back(c);
  return mine;
}

void test_transport() {
  auto t = ep::make_mpi_transport({std::chrono::milliseconds(20000), {}});
  check(t->rank() == g_rank && t->size() == g_size, "transport rank/size");
  check(t->single_host(), "every rank on this one machine: single_host");  // mpirun here runs on one node
  bool ok = true;
  for (int round = 0; round < 20; ++round) {
    std::vector<ep::Bytes> send(g_size), recv;
    for (int d = 0; d < g_size; ++d)
      send[d].assign((g_rank * 7 + d * 3 + round) % 11 + (round == 5 ? 1 << 20 : 0),
                     uint8_t(g_rank * 16 + d));
    t->all_to_all(send, recv);
    ok &= static_cast<int>(recv.size()) == g_size;
    for (int s = 0; ok && s < g_size; ++s) {
      ok &= recv[s].size() == size_t((s * 7 + g_rank * 3 + round) % 11 + (round == 5 ? 1 << 20 : 0));
      for (uint8_t v : recv[s]) ok &= v == uint8_t(s * 16 + g_rank);
    }
  }
  check(ok, "all_to_all of variable sizes (up to 1 MiB)");
  std::vector<int64_t> v{g_rank, 1, 7};
  t->all_reduce_sum(v.data(), v.size());
  check(v[0] == int64_t(g_size) * (g_size - 1) / 2 && v[1] == g_size && v[2] == 7 * g_size,
        "all_reduce_sum(int64)");
  // Doubles whose sum depends on the order: every rank must get the same bits.
  std::vector<double> d{1e16 * (g_rank % 2 ? -1 : 1) + 1.0 / (g_rank + 3), 0.1 * (g_rank + 1)};
  t->all_reduce_sum(d.data(), d.size());
  std::vector<double> all(2 * g_size);
  MPI_Allgather(d.data(), 2, MPI_DOUBLE, all.data(), 2, MPI_DOUBLE, MPI_COMM_WORLD);
  bool same = true;
  for (int r = 0; r < g_size; ++r) same &= std::memcmp(&all[2 * r], d.data(), 2 * sizeof(double)) == 0;
  check(same, "all_reduce_sum(double) gives the same bits on every rank");
  t->barrier();
  check(true, "barrier");
}

void test_logits(const std::string& name, int redundant, ep::CombineMode mode, bool overlap = false) {
  const std::string dir = std::string(MOERT_TEST_DATA) + "/" + name;
  Golden ref(name, {}, 1);
  const std::vector<int> mine = my_cases(ref);
  const std::vector<CaseOut> want = single(ref, mine);
  ep::EpOptions eo;
  eo.combine = mode;
  eo.overlap = overlap;
  Rank rk(dir, redundant, eo);
  std::vector<CaseOut> got(count_cases(ref));
  std::string err;
  try {
    ep::run_collective(rk.ep->transport(), [&] { run_share(*rk.model, *rk.cache, ref, mine, got); });
  } catch (const std::exception& e) {
    err = e.what();
  }
  const std::string what =
      name + " EP=" + std::to_string(g_size) + " redundant/rank=" + std::to_string(redundant) +
      (mode == ep::CombineMode::kExact ? " exact" : " partial") + (overlap ? " overlap" : "");
  check(err.empty(), what + ": no error (" + err + ")");
  const int64_t V = ref.cfg.vocab_size;
  float vs_single = 0, vs_ref = 0;
  bool shapes = true;
  for (int c : mine) {
    const std::string k = "case" + std::to_string(c);
    if (got[c].prompt.size() != want[c].prompt.size() || got[c].decode.size() != want[c].decode.size()) {
      shapes = false;
      continue;
    }
    vs_single =
        std::max(vs_single, max_abs_diff(got[c].prompt.data(), want[c].prompt.data(), want[c].prompt.size()));
    vs_ref = std::max(
        vs_ref, max_abs_diff(got[c].prompt.data(), ref.floats(k + ".prompt_logits"), want[c].prompt.size()));
    for (size_t i = 0; i < want[c].decode.size(); ++i) {
      vs_single = std::max(vs_single, max_abs_diff(got[c].decode[i].data(), want[c].decode[i].data(), V));
      vs_ref = std::max(vs_ref,
                        max_abs_diff(got[c].decode[i].data(), ref.floats(k + ".decode_logits") + i * V, V));
    }
  }
  float both[2] = {vs_single, vs_ref}, worst[2];
  MPI_Allreduce(both, worst, 2, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
  if (g_rank == 0)
    std::printf(
        "[mpi-ep] %s: %zu of %d cases on rank 0; max over ranks: vs single process %.3g, vs reference %.3g\n",
        what.c_str(), mine.size(), count_cases(ref), worst[0], worst[1]);
  check(shapes, what + ": logits of every case");
  check(vs_single < (overlap ? kOverlapTol : kPartialTol),
        what + ": vs single process " + std::to_string(vs_single));
  check(vs_ref < kRefTol, what + ": vs reference " + std::to_string(vs_ref));
  // Every routed pair counted: top_k per token per MoE layer, summed over ranks (a collective).
  std::vector<int64_t> load = rk.ep->gather_load();
  int64_t pairs = 0, tokens = 0, moe_layers = 0;
  for (int64_t x : load) pairs += x;
  for (int c = 0; c < count_cases(ref); ++c)
    tokens += static_cast<int64_t>(ref.ints("case" + std::to_string(c) + ".prompt").size() +
                                   ref.ints("case" + std::to_string(c) + ".decode_inputs").size());
  for (int64_t l = 0; l < ref.cfg.num_hidden_layers; ++l) moe_layers += ref.cfg.is_moe_layer(l);
  check(pairs == tokens * ref.cfg.num_experts_per_tok * moe_layers, what + ": load counters");
}

void test_rank_that_throws(bool overlap = false) {
  const std::string name = "tiny-v3-fp8";
  Golden ref(name, {}, 1);
  ep::EpOptions eo;
  eo.overlap = overlap;
  Rank rk(std::string(MOERT_TEST_DATA) + "/" + name, 0, eo, {std::chrono::milliseconds(20000), {}});
  std::vector<CaseOut> got(count_cases(ref));
  std::string err;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ep::run_collective(rk.ep->transport(),
                       [&] { run_share(*rk.model, *rk.cache, ref, my_cases(ref), got, g_rank == 1); });
  } catch (const std::exception& e) {
    err = e.what();
    if (err.empty()) err = "?";
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check(!err.empty(), "a rank that throws fails rank " + std::to_string(g_rank));
  if (g_rank == 1)
    check(err.find("outside the vocabulary") != std::string::npos, "rank 1's own error: " + err);
  else
    check(err.find("rank 1 failed") != std::string::npos, "names rank 1: " + err);
  check(s < 10.0, "an abort, not the time-out (" + std::to_string(s) + " s)");
  if (g_rank == 0)
    std::printf("[mpi-ep] rank 1 throws: every rank failed within %.2f s on rank 0: %s\n", s, err.c_str());
}

void test_silent_rank() {
  const std::string name = "tiny-v3-bf16";
  Golden ref(name, {}, 1);
  Rank rk(std::string(MOERT_TEST_DATA) + "/" + name, 0, {}, {std::chrono::milliseconds(1000), {}});
  std::string err;
  const auto t0 = std::chrono::steady_clock::now();
  if (g_rank != 1) {  // rank 1 never steps
    std::vector<int32_t> prompt = ref.ints("case0.prompt");
    try {
      KvSequence kv(rk.cache.get());
      std::vector<SequenceStep> steps{{&kv, prompt.data(), static_cast<int64_t>(prompt.size()), false}};
      std::vector<float> l(ref.cfg.vocab_size);
      rk.model->forward(steps, l.data());
    } catch (const Error& e) {
      err = e.what();
      if (e.code() != ErrorCode::kTimeout && e.code() != ErrorCode::kCancelled) err = "wrong code: " + err;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    check(err.find("timed out") != std::string::npos,
          "a silent rank makes rank " + std::to_string(g_rank) + " time out: " + err);
    check(s < 8.0, "within the time-out (" + std::to_string(s) + " s)");
    if (g_rank == 0) std::printf("[mpi-ep] rank 1 silent: rank 0 failed after %.2f s: %s\n", s, err.c_str());
  }
}

}  // namespace
}  // namespace moert

int main(int argc, char** argv) {
  using namespace moert;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  const std::vector<std::pair<std::string, std::function<void()>>> tests = {
      {"transport", test_transport},
      {"logits tiny-v3-fp8 red0 exact", [] { test_logits("tiny-v3-fp8", 0, ep::CombineMode::kExact); }},
      {"logits tiny-v3-fp8 red1 exact", [] { test_logits("tiny-v3-fp8", 1, ep::CombineMode::kExact); }},
      {"logits tiny-v3-fp8 red1 partial",
       [] { test_logits("tiny-v3-fp8", 1, ep::CombineMode::kPartialSums); }},
      {"logits tiny-v3-bf16 red0 exact", [] { test_logits("tiny-v3-bf16", 0, ep::CombineMode::kExact); }},
      {"logits tiny-v3-bf16 red1 partial",
       [] { test_logits("tiny-v3-bf16", 1, ep::CombineMode::kPartialSums); }},
      {"logits tiny-v2-bf16 red0 partial",
       [] { test_logits("tiny-v2-bf16", 0, ep::CombineMode::kPartialSums); }},
      {"logits tiny-v2-bf16 red1 exact", [] { test_logits("tiny-v2-bf16", 1, ep::CombineMode::kExact); }},
      {"logits tiny-v3-fp8 red0 exact overlap",
       [] { test_logits("tiny-v3-fp8", 0, ep::CombineMode::kExact, true); }},
      {"logits tiny-v3-fp8 red1 partial overlap",
       [] { test_logits("tiny-v3-fp8", 1, ep::CombineMode::kPartialSums, true); }},
      {"logits tiny-v3-bf16 red1 exact overlap",
       [] { test_logits("tiny-v3-bf16", 1, ep::CombineMode::kExact, true); }},
      {"logits tiny-v2-bf16 red0 exact overlap",
       [] { test_logits("tiny-v2-bf16", 0, ep::CombineMode::kExact, true); }},
      {"a rank that throws (overlap)", [] { test_rank_that_throws(true); }},
      {"a rank that throws", [] { test_rank_that_throws(); }},
      {"a silent rank", test_silent_rank},
  };
  for (const auto& [name, fn] : tests) {
    try {
      fn();
    } catch (const std::exception& e) {
      check(false, name + ": threw " + e.what());
    }
    // Realign the ranks between tests (a failed test may leave them apart); plain MPI here, outside moert.
    MPI_Barrier(MPI_COMM_WORLD);
  }
  int mine[2] = {g_passed, g_failed}, sum[2];
  MPI_Allreduce(mine, sum, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0) std::printf("%d ranks: %d passed, %d failed\n", g_size, sum[0], sum[1]);
  MPI_Finalize();
  return sum[1] == 0 ? 0 : 1;
}
