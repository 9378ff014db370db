// Where the routed experts live: logical experts (the checkpoint's) spread over EP ranks as physical slots,
// `slots_per_rank` per rank, the same count on every rank. A slot holds one logical expert or nothing
// (-1); a logical expert may have several replicas (redundant experts), always on distinct ranks. One
// table per layer slot (the model's layers, MTP layers after them; dense layers carry one too, unused).
//
// Rebalancing (EPLB) follows DeepSeek's published algorithm (github.com/deepseek-ai/EPLB):
//  - global: replicate experts one slot at a time, each time the expert with the largest load per replica,
//    then pack the replicas onto ranks, heaviest first, each onto the lightest rank with a free slot;
//  - hierarchical (when expert groups divide evenly over nodes): pack the expert groups onto nodes
//    (balanced), replicate within each node, then pack that node's replicas onto its ranks.
// Two additions: an expert gets at most as many replicas as there are ranks to hold them (a node's ranks
// in the hierarchical policy), and the packing puts two replicas of one expert on the same rank never.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moert::ep {

struct Placement {
  int ranks = 1;
  int slots_per_rank = 0;
  int64_t experts = 0;
  // layers[l][rank * slots_per_rank + j] = logical expert in that slot, or -1.
  std::vector<std::vector<int32_t>> layers;

  int64_t num_layers() const { return static_cast<int64_t>(layers.size()); }
  int32_t slot(int64_t layer, int rank, int j) const { return layers[layer][rank * slots_per_rank + j]; }
  bool holds(int64_t layer, int rank, int64_t expert) const;
  // Ranks holding a replica of `expert` in `layer`, ascending.
  std::vector<int> replicas(int64_t layer, int64_t expert) const;
  // Throws Error(kInvalidArgument) naming the first problem: a slot count, an expert out of range or
  // missing, two replicas on one rank.
  void validate() const;
  std::string describe(int64_t layer) const;  // "r0: 0 1 2 | r1: 3 4 5" (for logs and tests)
};

// Experts 0 .. E-1 in contiguous blocks of ceil(E / ranks) over the ranks (rank r holds [r*b, (r+1)*b)),
// plus `redundant_per_rank` extra slots per rank holding replicas of the next ranks' first experts (rank r:
// of ranks r+1, r+2, ..., so never of its own). Every layer the same.
Placement contiguous_placement(int64_t layers, int64_t experts, int ranks, int redundant_per_rank = 0);

enum class EplbPolicy { kGlobal, kHierarchical };

struct EplbOptions {
  EplbPolicy policy = EplbPolicy::kGlobal;
  int groups = 1;  // hierarchical: expert groups (the router's n_group), each kept on one node
  int nodes = 1;   // hierarchical: nodes, ranks / nodes ranks each
};

// One layer: load[e] (routed tokens of logical expert e) -> phys[rank * slots_per_rank + j] = logical
// expert. ranks * slots_per_rank >= experts; every expert gets at least one slot.
std::vector<int32_t> eplb_layer(const std::vector<double>& load, int ranks, int slots_per_rank,
                                const EplbOptions& opts = {});

// Every layer: load [layers * experts] (the gathered counters) -> a placement.
Placement eplb_placement(const std::vector<int64_t>& load, int64_t layers, int64_t experts, int ranks,
                         int slots_per_rank, const EplbOptions& opts = {});

// DeepSeek's building blocks, exposed for the tests. balanced_packing: items (weights) into `packs` packs
// of items.size() / packs items each, heaviest first onto the lightest pack with room; `item_key`, when
// given, names items that must not share a pack (replicas of one expert). Returns pack[i], index[i]
// (position within the pack).
void balanced_packing(const std::vector<double>& weight, int packs, std::vector<int>& pack,
                      std::vector<int>& index, const std::vector<int32_t>* item_key = nullptr);
// replicate: `physical` slots for weight.size() logical experts, at most `max_replicas` each: phys2log
// (the first weight.size() are 0..n-1), replica count per logical expert.
void replicate_experts(const std::vector<double>& weight, int physical, int max_replicas,
                       std::vector<int32_t>& phys2log, std::vector<int>& count);

// Load imbalance of a placement for given loads: tokens routed to each rank (an expert's load shared
// evenly by its replicas), max / mean over ranks. Per layer, and the mean over layers.
std::vector<double> rank_loads(const Placement& p, int64_t layer, const std::vector<double>& load);
double imbalance(const std::vector<double>& per_rank);

}  // namespace moert::ep
