// Expert parallelism: the routed experts of every MoE layer spread over the ranks of a group
// (Placement), attention and dense layers data-parallel (each rank runs its own requests, its own batch
// and KV cache). Per MoE layer, on every rank:
//   route locally (DeepseekNetwork::mlp) -> dispatch: each token goes once to every rank that holds one of
//   its experts, with the ids (and weights) of those experts -> each rank runs its local experts over the
//   tokens it received (the grouped expert FFN, runtime/model/moe_ffn, the other experts null) -> combine:
//   results go back to the origin, which sums them in a fixed order (Backend::moe_combine) -> shared experts
//   run locally (DeepseekNetwork::mlp).
//
// Where the data lives: the routing (T x top-k ids and weights) comes to the host to plan the exchange and
// the small control messages (per token its row, expert ids and, for partial sums, weights) go over
// Transport::all_to_all. The rows stay in backend memory: gathered per destination on the backend
// (gather_rows), exchanged by Transport::all_to_all_rows where the transport moves backend memory
// (in-process ranks on the CPU; NCCL between GPUs, device to device), otherwise carried inside the control
// messages (MPI), and combined on the backend.
//
// Combine, and how it compares with the single-process sum (moe_ffn adds each token's
// weight * expert output in ascending expert id, from zero):
//  - CombineMode::kExact (default): ranks return one row per (token, expert) pair, unweighted; the origin
//    adds weight * row in ascending expert id from zero (Backend::moe_combine, as one process does).
//    Bit-exact with the single-process sum whenever each expert's output rows are (the CPU GEMM's result for
//    a row does not depend on the other rows of the same call while the call's row count stays in the same
//    kernel class: 1-4, 5-16, more (AMX tiles where the CPU has them); see tests/ep). Costs top-k rows per
//    token on the way back.
//  - CombineMode::kPartialSums: each rank returns one row per token, the weighted sum over its experts
//    (in ascending id); the origin adds the ranks' rows in ascending rank order. Same K = top-k products,
//    summed in another order: with u = 2^-24 and g_K = K u / (1 - K u), each sum is within g_K sum|w_i y_i|
//    of the exact value, so the two differ by at most 2 g_K sum_i |w_i y_i| per element (K = 8: ~9.5e-7
//    relative to sum |w_i y_i|). Tested at the layer level and on the fixtures' logits.
//
// Redundant experts: an expert with several replicas is served, per token, by replica (t + rank + e) mod n
// (t: the token's row on its origin rank), so a hot expert's tokens split evenly. With
// max_ranks_per_token = M > 0, a replica on a rank the token already uses is preferred (experts with a
// single replica fix their ranks first) and tokens still spanning more than M ranks are counted
// (over_limit_tokens) or, with strict_rank_limit, fail. DeepSeek's node limit itself is the router's group
// limit: with a placement that keeps each expert group on one rank (contiguous_placement when the ranks
// divide n_group, or the hierarchical EPLB policy with groups = n_group), topk_group <= M bounds it.
//
// Load statistics: every routed (token, expert) pair is counted per layer and logical expert on the rank
// that routed it; gather_load() sums them over ranks (all-reduce). rebalance() turns them into an EPLB
// placement, the same on every rank, and re-binds the model's experts (between steps).
//
// Two-microbatch overlap (EpOptions::overlap): DeepseekNetwork::forward splits each batch in two and
// interleaves their layers so one microbatch's dispatch or combine is in flight while the other computes
// (see runtime/model/two_microbatch.cpp). The exchanges run on an ExchangeLane (a thread of this rank) in
// the order they were started; every rank starts them in the same order (two per MoE layer each way,
// empty microbatches included).
//
// Faults: wrap each rank's forward in run_collective (transport.h): a rank that throws aborts the group and
// every other rank's forward throws Error too (kCancelled); a rank that stops answering makes the others
// throw kTimeout after the transport's time-out.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ep/exchange_lane.h"
#include "ep/placement.h"
#include "ep/transport.h"
#include "model/deepseek_network.h"

namespace moert::ep {

enum class CombineMode { kExact, kPartialSums };

struct EpOptions {
  CombineMode combine = CombineMode::kExact;
  bool overlap = false;         // two-microbatch overlap of the exchanges with compute (same on every rank)
  int max_ranks_per_token = 0;  // 0: no limit
  bool strict_rank_limit = false;
};

class ExpertParallel final : public MoeExpertsHook {
 public:
  ExpertParallel(std::shared_ptr<Transport> transport, Backend& backend, Placement placement,
                 EpOptions opts = {});

  int rank() const { return t_->rank(); }
  int size() const { return t_->size(); }
  Transport& transport() { return *t_; }
  const Placement& placement() const { return p_; }
  const EpOptions& options() const { return opts_; }
  // The experts this rank binds under the current placement (for ModelOptions::bind_expert).
  ExpertFilter bind_filter() const;
  // Switches to a new placement (validated; same layer and expert counts). The model must then re-bind:
  // model.rebind_experts(bind_filter()), before the next forward (the expert sets are prepared anew from the
  // weights bound then). Between steps only.
  void set_placement(Placement p);

  std::unique_ptr<MoeExchange> begin(int64_t layer, const LayerWeights& L, const Tensor& x, const Tensor& ids,
                                     const Tensor& weights, ActMode mode) override;
  void compute(MoeExchange& ex) override;
  void finish(MoeExchange& ex, Tensor& out) override;
  bool two_microbatches() const override { return opts_.overlap; }
  void abandon(const std::string& why) override;

  // Routed (token, expert) pairs of this rank's tokens, [layers * experts].
  const std::vector<int64_t>& local_load() const { return load_; }
  // (token, expert) pairs computed on this rank, [layers].
  const std::vector<int64_t>& local_work() const { return work_; }
  // Collective: fails every rank with Error(kInvalidArgument) naming the first setting on which the ranks
  // differ (the placement's shape, the combine mode, the overlap, the rank limit, and `extra` (name, value)
  // pairs the caller adds, e.g. the model's shape). Mismatched settings would otherwise pair exchanges of
  // different kinds. Every rank must pass the same names in the same order.
  void check_same_settings(const std::vector<std::pair<std::string, int64_t>>& extra = {});
  // Collective: load summed over ranks, [layers * experts].
  std::vector<int64_t> gather_load();
  // Collective: pairs computed per rank, [layers * ranks].
  std::vector<int64_t> gather_work();
  void reset_load();
  int64_t over_limit_tokens() const { return over_limit_; }

 private:
  struct Round;
  struct Exchange;
  void rebuild_tables();
  int choose_replica(int64_t layer, int64_t t, int64_t e) const;
  void route(Exchange& ex);
  Tensor upload_i32(const std::vector<int32_t>& v);
  // One round over the transport: on the lane when overlapping (ex.pending), else now. wait() ends it and
  // leaves rd.ctl_in, rd.n_in and rd.rows_in filled.
  void start(Exchange& ex, Round& rd);
  void wait(Exchange& ex, Round& rd);

  std::shared_ptr<Transport> t_;
  Backend& b_;
  Placement p_;
  EpOptions opts_;
  std::vector<std::vector<std::vector<int>>> reps_;  // [layer][expert] ranks holding it
  std::vector<std::unique_ptr<ExpertSet>> sets_;     // [layer] this rank's experts, prepared on first use
  std::vector<int64_t> load_, work_;
  int64_t over_limit_ = 0;
  std::unique_ptr<ExchangeLane> lane_;  // when overlapping
};

// Collective: gathers the load counters, computes the EPLB placement (identical on every rank), applies it
// and re-binds `model`'s experts, then clears the counters. slots_per_rank = 0 keeps the current count.
// Returns the new placement.
Placement rebalance(ExpertParallel& ep, DeepseekNetwork& model, const EplbOptions& opts,
                    int slots_per_rank = 0);

}  // namespace moert::ep
