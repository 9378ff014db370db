#include "ep/placement.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace moert::ep {

bool Placement::holds(int64_t layer, int rank, int64_t expert) const {
  const int32_t* s = layers[layer].data() + static_cast<size_t>(rank) * slots_per_rank;
  return std::find(s, s + slots_per_rank, static_cast<int32_t>(expert)) != s + slots_per_rank;
}

std::vector<int> Placement::replicas(int64_t layer, int64_t expert) const {
  std::vector<int> r;
  for (int k = 0; k < ranks; ++k)
    if (holds(layer, k, expert)) r.push_back(k);
  return r;
}

void Placement::validate() const {
  auto bad = [](const std::string& m) { fail(ErrorCode::kInvalidArgument, "expert placement: " + m); };
  if (ranks < 1 || slots_per_rank < 1 || experts < 1) bad("needs ranks, slots and experts");
  if (static_cast<int64_t>(ranks) * slots_per_rank < experts)
    bad(std::to_string(ranks) + " ranks x " + std::to_string(slots_per_rank) + " slots cannot hold " +
        std::to_string(experts) + " experts");
  for (int64_t l = 0; l < num_layers(); ++l) {
    const std::string at = "layer " + std::to_string(l) + ": ";
    if (static_cast<int64_t>(layers[l].size()) != static_cast<int64_t>(ranks) * slots_per_rank)
      bad(at + std::to_string(layers[l].size()) + " slots, expected ranks x slots_per_rank");
    std::vector<int> seen(experts, 0);
    for (int r = 0; r < ranks; ++r) {
      std::vector<char> on_rank(experts, 0);
      for (int j = 0; j < slots_per_rank; ++j) {
        const int32_t e = slot(l, r, j);
        if (e == -1) continue;
        if (e < 0 || e >= experts) bad(at + "expert id " + std::to_string(e) + " out of range");
        if (on_rank[e])
          bad(at + "two replicas of expert " + std::to_string(e) + " on rank " + std::to_string(r));
        on_rank[e] = 1;
        ++seen[e];
      }
    }
    for (int64_t e = 0; e < experts; ++e)
      if (!seen[e]) bad(at + "expert " + std::to_string(e) + " is on no rank");
  }
}

std::string Placement::describe(int64_t layer) const {
  std::string s;
  for (int r = 0; r < ranks; ++r) {
    if (r) s += " | ";
    s += "r" + std::to_string(r) + ":";
    for (int j = 0; j < slots_per_rank; ++j) s += " " + std::to_string(slot(layer, r, j));
  }
  return s;
}

Placement contiguous_placement(int64_t layers, int64_t experts, int ranks, int redundant_per_rank) {
  if (ranks < 1 || experts < 1 || redundant_per_rank < 0)
    fail(ErrorCode::kInvalidArgument, "contiguous_placement: bad ranks, experts or redundant count");
  Placement p;
  p.ranks = ranks;
  p.experts = experts;
  const int b = static_cast<int>((experts + ranks - 1) / ranks);
  p.slots_per_rank = b + redundant_per_rank;
  std::vector<int32_t> t(static_cast<size_t>(ranks) * p.slots_per_rank, -1);
  for (int r = 0; r < ranks; ++r) {
    for (int j = 0; j < b; ++j) {
      const int64_t e = static_cast<int64_t>(r) * b + j;
      t[r * p.slots_per_rank + j] = e < experts ? static_cast<int32_t>(e) : -1;
    }
    // Redundant slots: the first experts of the following ranks, in order.
    int k = 0;
    for (int d = 1; d < ranks && k < redundant_per_rank; ++d)
      for (int j = 0; j < b && k < redundant_per_rank; ++j) {
        const int64_t e = static_cast<int64_t>((r + d) % ranks) * b + j;
        if (e < experts) t[r * p.slots_per_rank + b + k++] = static_cast<int32_t>(e);
      }
  }
  p.layers.assign(layers, t);
  return p;
}

namespace {

std::vector<int> by_weight_desc(const std::vector<double>& w) {
  std::vector<int> idx(w.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return w[a] > w[b]; });
  return idx;
}

}  // namespace

void balanced_packing(const std::vector<double>& weight, int packs, std::vector<int>& pack,
                      std::vector<int>& index, const std::vector<int32_t>* key) {
  const int n = static_cast<int>(weight.size());
  if (packs < 1 || n % packs != 0)
    fail(ErrorCode::kInvalidArgument,
         "balanced_packing: " + std::to_string(n) + " items into " + std::to_string(packs) + " packs");
  const int per = n / packs;
  pack.assign(n, -1);
  index.assign(n, -1);
  std::vector<double> load(packs, 0.0);
  std::vector<std::vector<int>> members(packs);
  auto clash = [&](int p, int item) {
    if (!key || (*key)[item] < 0) return false;
    for (int m : members[p])
      if ((*key)[m] == (*key)[item]) return true;
    return false;
  };
  for (int item : by_weight_desc(weight)) {
    int best = -1;
    for (int strict = 1; strict >= 0 && best < 0; --strict)
      for (int p = 0; p < packs; ++p) {
        if (static_cast<int>(members[p].size()) >= per || (strict && clash(p, item))) continue;
        if (best < 0 || load[p] < load[best]) best = p;
      }
    members[best].push_back(item);
    load[best] += weight[item];
  }
  // Repair (rare): a pack holding two items of one key swaps one of them with an item of another pack.
  if (key) {
    for (int round = 0; round < n * n; ++round) {
      bool changed = false;
      for (int p = 0; p < packs && !changed; ++p)
        for (size_t a = 0; a < members[p].size() && !changed; ++a) {
          const int ia = members[p][a];
          std::vector<int> rest = members[p];
          rest.erase(rest.begin() + a);
          auto has = [&](const std::vector<int>& v, int item) {
            if ((*key)[item] < 0) return false;
            for (int m : v)
              if ((*key)[m] == (*key)[item]) return true;
            return false;
          };
          if (!has(rest, ia)) continue;
          for (int q = 0; q < packs && !changed; ++q) {
            if (q == p) continue;
            for (size_t b = 0; b < members[q].size() && !changed; ++b) {
              const int ib = members[q][b];
              std::vector<int> qrest = members[q];
              qrest.erase(qrest.begin() + b);
              if (has(rest, ib) || has(qrest, ia)) continue;
              members[p][a] = ib;
              members[q][b] = ia;
              changed = true;
            }
          }
        }
      if (!changed) break;
    }
  }
  for (int p = 0; p < packs; ++p)
    for (size_t i = 0; i < members[p].size(); ++i) {
      pack[members[p][i]] = p;
      index[members[p][i]] = static_cast<int>(i);
    }
}

void replicate_experts(const std::vector<double>& weight, int physical, int max_replicas,
                       std::vector<int32_t>& phys2log, std::vector<int>& count) {
  const int n = static_cast<int>(weight.size());
  if (physical < n) fail(ErrorCode::kInvalidArgument, "replicate_experts: fewer slots than experts");
  phys2log.resize(n);
  std::iota(phys2log.begin(), phys2log.end(), 0);
  count.assign(n, 1);
  for (int i = n; i < physical; ++i) {
    int best = -1;
    for (int e = 0; e < n; ++e) {
      if (count[e] >= max_replicas) continue;
      if (best < 0 || weight[e] / count[e] > weight[best] / count[best]) best = e;
    }
    if (best < 0) break;  // every expert on every rank: the remaining slots stay empty
    phys2log.push_back(best);
    ++count[best];
  }
}

std::vector<int32_t> eplb_layer(const std::vector<double>& load, int ranks, int slots_per_rank,
                                const EplbOptions& o) {
  const int E = static_cast<int>(load.size());
  const int physical = ranks * slots_per_rank;
  if (physical < E)
    fail(ErrorCode::kInvalidArgument,
         "eplb: " + std::to_string(physical) + " slots for " + std::to_string(E) + " experts");
  int G = 1, N = 1;
  if (o.policy == EplbPolicy::kHierarchical) {
    G = o.groups;
    N = o.nodes;
    if (G < 1 || N < 1 || E % G != 0 || G % N != 0 || ranks % N != 0 || (E / N) > physical / N)
      fail(ErrorCode::kInvalidArgument, "eplb (hierarchical): " + std::to_string(G) + " groups of " +
                                            std::to_string(E) + " experts over " + std::to_string(N) +
                                            " nodes of " + std::to_string(ranks) +
                                            " ranks do not divide evenly");
  }
  const int group_size = E / G, groups_per_node = G / N, ranks_per_node = ranks / N, per_node = E / N,
            phys_per_node = physical / N;
  // Step 1: expert groups onto nodes (balanced); mlog = the expert's position in node-major order.
  std::vector<double> group_load(G, 0.0);
  for (int e = 0; e < E; ++e) group_load[e / group_size] += load[e];
  std::vector<int> gpack, gidx;
  balanced_packing(group_load, N, gpack, gidx);
  std::vector<int32_t> mlog2log(E);
  for (int e = 0; e < E; ++e) {
    const int g = e / group_size;
    mlog2log[(gpack[g] * groups_per_node + gidx[g]) * group_size + e % group_size] = e;
  }
  std::vector<int32_t> out(physical, -1);
  for (int node = 0; node < N; ++node) {
    // Step 2: replicate within the node, at most one replica per rank of the node.
    std::vector<double> w(per_node);
    for (int m = 0; m < per_node; ++m) w[m] = load[mlog2log[node * per_node + m]];
    std::vector<int32_t> phys2m;
    std::vector<int> cnt;
    replicate_experts(w, phys_per_node, ranks_per_node, phys2m, cnt);
    // Step 3: the node's replicas (padded with empty slots) onto its ranks, replicas apart.
    std::vector<double> pw(phys_per_node, 0.0);
    std::vector<int32_t> key(phys_per_node, -1);
    for (size_t i = 0; i < phys2m.size(); ++i) {
      pw[i] = w[phys2m[i]] / cnt[phys2m[i]];
      key[i] = phys2m[i];
    }
    std::vector<int> pack, idx;
    balanced_packing(pw, ranks_per_node, pack, idx, &key);
    for (int i = 0; i < phys_per_node; ++i)
      out[(node * ranks_per_node + pack[i]) * slots_per_rank + idx[i]] =
          key[i] < 0 ? -1 : mlog2log[node * per_node + key[i]];
  }
  return out;
}

Placement eplb_placement(const std::vector<int64_t>& load, int64_t layers, int64_t experts, int ranks,
                         int slots_per_rank, const EplbOptions& opts) {
  if (static_cast<int64_t>(load.size()) != layers * experts)
    fail(ErrorCode::kInvalidArgument, "eplb_placement: load has " + std::to_string(load.size()) +
                                          " counters, expected " + std::to_string(layers * experts));
  Placement p;
  p.ranks = ranks;
  p.slots_per_rank = slots_per_rank;
  p.experts = experts;
  for (int64_t l = 0; l < layers; ++l) {
    std::vector<double> w(load.begin() + l * experts, load.begin() + (l + 1) * experts);
    p.layers.push_back(eplb_layer(w, ranks, slots_per_rank, opts));
  }
  p.validate();
  return p;
}

std::vector<double> rank_loads(const Placement& p, int64_t layer, const std::vector<double>& load) {
  std::vector<int> reps(p.experts, 0);
  for (int32_t e : p.layers[layer])
    if (e >= 0) ++reps[e];
  std::vector<double> r(p.ranks, 0.0);
  for (int k = 0; k < p.ranks; ++k)
    for (int j = 0; j < p.slots_per_rank; ++j) {
      const int32_t e = p.slot(layer, k, j);
      if (e >= 0) r[k] += load[e] / reps[e];
    }
  return r;
}

double imbalance(const std::vector<double>& v) {
  if (v.empty()) return 1.0;
  const double mx = *std::max_element(v.begin(), v.end());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  return mean > 0 ? mx / mean : 1.0;
}

}  // namespace moert::ep
