#include "ep/expert_parallel.h"

#include <algorithm>
#include <cstring>

#include "model/moe_ffn.h"
#include "util/error.h"

namespace moert::ep {
namespace {

// Little-endian-agnostic packing of 4-byte values (both ends are the same build).
class Writer {
 public:
  explicit Writer(Bytes& b) : b_(b) {}
  template <class T>
  void put(T v) {
    static_assert(sizeof(T) == 4);
    const size_t n = b_.size();
    b_.resize(n + 4);
    std::memcpy(b_.data() + n, &v, 4);
  }
  void put_floats(const float* p, int64_t n) {
    const size_t at = b_.size();
    b_.resize(at + n * sizeof(float));
    if (n) std::memcpy(b_.data() + at, p, n * sizeof(float));
  }

 private:
  Bytes& b_;
};

class Reader {
 public:
  explicit Reader(const Bytes& b) : b_(b) {}
  template <class T>
  T get() {
    need(4);
    T v;
    std::memcpy(&v, b_.data() + at_, 4);
    at_ += 4;
    return v;
  }
  const float* floats(int64_t n) {
    need(n * sizeof(float));
    const float* p = reinterpret_cast<const float*>(b_.data() + at_);
    at_ += n * sizeof(float);
    return p;
  }

 private:
  void need(size_t n) const {
    if (at_ + n > b_.size()) fail(ErrorCode::kInternal, "expert-parallel message truncated");
  }
  const Bytes& b_;
  size_t at_ = 0;
};

}  // namespace

ExpertParallel::ExpertParallel(std::shared_ptr<Transport> transport, Backend& backend, Placement placement,
                               EpOptions opts)
    : t_(std::move(transport)), b_(backend), opts_(opts) {
  if (!t_) fail(ErrorCode::kInvalidArgument, "expert parallelism needs a transport");
  set_placement(std::move(placement));
}

void ExpertParallel::set_placement(Placement p) {
  p.validate();
  if (p.ranks != t_->size())
    fail(ErrorCode::kInvalidArgument,
         "placement for " + std::to_string(p.ranks) + " ranks in a group of " + std::to_string(t_->size()));
  if (!p_.layers.empty() && (p.num_layers() != p_.num_layers() || p.experts != p_.experts))
    fail(ErrorCode::kInvalidArgument, "a new placement must keep the layer and expert counts");
  p_ = std::move(p);
  rebuild_tables();
  if (load_.empty()) {
    load_.assign(p_.num_layers() * p_.experts, 0);
    work_.assign(p_.num_layers(), 0);
  }
}

void ExpertParallel::rebuild_tables() {
  reps_.assign(p_.num_layers(), std::vector<std::vector<int>>(p_.experts));
  for (int64_t l = 0; l < p_.num_layers(); ++l)
    for (int64_t e = 0; e < p_.experts; ++e) reps_[l][e] = p_.replicas(l, e);
}

ExpertFilter ExpertParallel::bind_filter() const {
  auto p = std::make_shared<Placement>(p_);
  const int r = rank();
  return [p, r](int64_t layer, int64_t e) { return layer < p->num_layers() && p->holds(layer, r, e); };
}

void ExpertParallel::reset_load() {
  std::fill(load_.begin(), load_.end(), 0);
  std::fill(work_.begin(), work_.end(), 0);
  over_limit_ = 0;
}

void ExpertParallel::check_same_settings(const std::vector<std::pair<std::string, int64_t>>& extra) {
  std::vector<std::pair<std::string, int64_t>> s = {
      {"layers", p_.num_layers()},
      {"routed experts", p_.experts},
      {"expert slots per rank (ep_redundant)", p_.slots_per_rank},
      {"combine mode", opts_.combine == CombineMode::kExact ? 0 : 1},
      {"ep_overlap", opts_.overlap ? 1 : 0},
      {"ep_max_ranks_per_token", opts_.max_ranks_per_token},
      {"strict rank limit", opts_.strict_rank_limit ? 1 : 0}};
  s.insert(s.end(), extra.begin(), extra.end());
  // Sums and sums of squares: every rank holds v exactly when sum = n v and sum of squares = n v^2.
  std::vector<double> v(2 * s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    v[2 * i] = static_cast<double>(s[i].second);
    v[2 * i + 1] = static_cast<double>(s[i].second) * static_cast<double>(s[i].second);
  }
  t_->all_reduce_sum(v.data(), v.size());
  const double n = size();
  for (size_t i = 0; i < s.size(); ++i) {
    const double mean = v[2 * i] / n;
    if (v[2 * i + 1] / n - mean * mean > 1e-9 * std::max(1.0, mean * mean))
      fail(ErrorCode::kInvalidArgument, "expert-parallel ranks disagree on " + s[i].first + " (this rank " +
                                            std::to_string(s[i].second) + ", mean over ranks " +
                                            std::to_string(mean) +
                                            "): every rank must load with the same settings");
  }
}

std::vector<int64_t> ExpertParallel::gather_load() {
  std::vector<int64_t> v = load_;
  t_->all_reduce_sum(v.data(), v.size());
  return v;
}

std::vector<int64_t> ExpertParallel::gather_work() {
  const int64_t L = p_.num_layers(), R = size();
  std::vector<int64_t> v(L * R, 0);
  for (int64_t l = 0; l < L; ++l) v[l * R + rank()] = work_[l];
  t_->all_reduce_sum(v.data(), v.size());
  return v;
}

int ExpertParallel::choose_replica(int64_t layer, int64_t t, int64_t e) const {
  const std::vector<int>& r = reps_[layer][e];
  return r.size() == 1 ? r[0] : r[static_cast<size_t>((t + rank() + e) % static_cast<int64_t>(r.size()))];
}

// One microbatch's exchange for one MoE layer: host copies of its inputs, the messages, and what to send
// back. The lane task (when overlapping) writes only `recv`/`got`, which live here until it ends.
struct ExpertParallel::Exchange final : MoeExchange {
  ~Exchange() override {
    if (pending.valid()) pending.wait();
  }
  int64_t layer = 0, T = 0, H = 0, K = 0;
  const LayerWeights* L = nullptr;
  ActMode mode = ActMode::kF32;
  std::vector<float> xh, wh;  // [T, H], [T, K]
  std::vector<int32_t> ids;   // [T, K]
  std::vector<int32_t> dest;  // [T, K]: the rank computing each pair
  std::vector<Bytes> send, recv, back, got;
  std::vector<std::vector<std::pair<int32_t, int32_t>>> sent;  // per rank: (token, slot) of each pair sent
  std::vector<std::vector<int32_t>> toks;                      // per rank: tokens sent, in order
  struct Arrived {
    int64_t tokens = 0, pairs = 0, row0 = 0;
  };
  std::vector<Arrived> arr;  // per source rank
  std::future<void> pending;
};

void ExpertParallel::start(Exchange& ex, std::vector<Bytes>& send, std::vector<Bytes>& recv) {
  if (!opts_.overlap) {
    t_->all_to_all(send, recv);
    return;
  }
  if (!lane_) lane_ = std::make_unique<ExchangeLane>();
  Transport* t = t_.get();
  ex.pending = lane_->submit([t, &send, &recv] { t->all_to_all(send, recv); });
}

void ExpertParallel::wait(Exchange& ex) {
  if (ex.pending.valid()) ex.pending.get();  // rethrows the transport's error
}

void ExpertParallel::abandon(const std::string& why) {
  t_->abort("rank " + std::to_string(rank()) + " failed: " + why);
}

// Chooses the rank that computes each (token, expert) pair and counts the load.
void ExpertParallel::route(Exchange& ex) {
  const int R = size();
  const int64_t T = ex.T, K = ex.K, E = p_.experts, layer = ex.layer;
  ex.dest.assign(static_cast<size_t>(T * K), -1);
  int64_t* load = load_.data() + layer * E;
  std::vector<char> used(R);
  for (int64_t t = 0; t < T; ++t) {
    std::fill(used.begin(), used.end(), 0);
    const int32_t* e = ex.ids.data() + t * K;
    int32_t* dest = ex.dest.data() + t * K;
    for (int64_t s = 0; s < K; ++s) {
      if (e[s] < 0 || e[s] >= E) fail(ErrorCode::kInternal, "expert parallelism: expert id out of range");
      ++load[e[s]];
      if (reps_[layer][e[s]].size() == 1) used[dest[s] = reps_[layer][e[s]][0]] = 1;
    }
    for (int64_t s = 0; s < K; ++s) {
      if (dest[s] >= 0) continue;
      int d = -1;
      if (opts_.max_ranks_per_token > 0)
        for (int r : reps_[layer][e[s]])
          if (used[r]) {
            d = r;
            break;
          }
      if (d < 0) d = choose_replica(layer, t, e[s]);
      used[dest[s] = d] = 1;
    }
    if (opts_.max_ranks_per_token > 0) {
      const int n = static_cast<int>(std::count(used.begin(), used.end(), 1));
      if (n > opts_.max_ranks_per_token) {
        ++over_limit_;
        if (opts_.strict_rank_limit)
          fail(ErrorCode::kInvalidArgument, "a token's experts span " + std::to_string(n) +
                                                " ranks, more than " +
                                                std::to_string(opts_.max_ranks_per_token));
      }
    }
  }
}

std::unique_ptr<MoeExchange> ExpertParallel::begin(int64_t layer, const LayerWeights& L, const Tensor& x,
                                                   const Tensor& ids, const Tensor& weights, ActMode mode) {
  if (layer < 0 || layer >= p_.num_layers())
    fail(ErrorCode::kInternal, "expert parallelism: layer " + std::to_string(layer) + " has no placement");
  auto ex = std::make_unique<Exchange>();
  const int R = size();
  ex->layer = layer;
  ex->L = &L;
  ex->mode = mode;
  ex->T = x.rows;
  ex->H = ex->T ? x.cols : 0;
  ex->K = ex->T ? ids.cols : 0;
  const int64_t T = ex->T, H = ex->H, K = ex->K;
  const bool exact = opts_.combine == CombineMode::kExact;
  if (T && static_cast<int64_t>(L.experts.size()) != p_.experts)
    fail(ErrorCode::kInternal, "expert parallelism: the layer has " + std::to_string(L.experts.size()) +
                                   " experts, the placement " + std::to_string(p_.experts));
  ex->xh.resize(static_cast<size_t>(T * H));
  ex->wh.resize(static_cast<size_t>(T * K));
  ex->ids.resize(static_cast<size_t>(T * K));
  if (T) {
    b_.copy_to_host(x, ex->xh.data());
    b_.copy_to_host(weights, ex->wh.data());
    b_.copy_to_host_i32(ids, ex->ids.data());
  }
  route(*ex);

  // Dispatch: per destination, [n_tok] then per token [row][count][count expert ids][count weights (partial
  // mode)], then the tokens' rows. `sent[r]` remembers (token, slot) of every pair sent to r, in order.
  ex->send.resize(R);
  ex->sent.resize(R);
  ex->toks.resize(R);
  const int32_t* dest = ex->dest.data();
  for (int r = 0; r < R; ++r) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < K; ++s)
        if (dest[t * K + s] == r) {
          ex->toks[r].push_back(static_cast<int32_t>(t));
          break;
        }
    Writer w(ex->send[r]);
    w.put<int32_t>(static_cast<int32_t>(ex->toks[r].size()));
    for (int32_t t : ex->toks[r]) {
      std::vector<int32_t> slots;
      for (int64_t s = 0; s < K; ++s)
        if (dest[t * K + s] == r) slots.push_back(static_cast<int32_t>(s));
      w.put<int32_t>(t);
      w.put<int32_t>(static_cast<int32_t>(slots.size()));
      for (int32_t s : slots) {
        w.put<int32_t>(ex->ids[t * K + s]);
        ex->sent[r].emplace_back(t, s);
      }
      if (!exact)
        for (int32_t s : slots) w.put<float>(ex->wh[t * K + s]);
    }
    for (int32_t t : ex->toks[r]) w.put_floats(ex->xh.data() + t * H, H);
  }
  start(*ex, ex->send, ex->recv);
  return ex;
}

void ExpertParallel::compute(MoeExchange& base) {
  Exchange& ex = static_cast<Exchange&>(base);
  wait(ex);
  const int R = size(), me = rank();
  const int64_t E = p_.experts, layer = ex.layer;
  const LayerWeights& L = *ex.L;
  const bool exact = opts_.combine == CombineMode::kExact;

  // Local experts over what arrived. Exact: one row per (token, expert) pair, weight 1; partial: one row per
  // token with its experts on this rank (the others padded with id E, which is null) and their weights.
  ex.arr.assign(R, {});
  std::vector<int32_t> rid;  // ids of the rows computed here
  std::vector<float> rw;     // their weights
  std::vector<float> rx;     // their inputs
  // Rows follow the headers; every rank runs the same model, so the width is the hidden size (router's k).
  const int64_t width = L.router.k();
  int64_t rows = 0;
  for (int src = 0; src < R; ++src) {
    Reader rd(ex.recv[src]);
    const int32_t n = rd.get<int32_t>();
    std::vector<std::vector<int32_t>> tok_ids(n);
    std::vector<std::vector<float>> tok_w(n);
    for (int32_t i = 0; i < n; ++i) {
      rd.get<int32_t>();  // the origin's row (the origin keeps its own order)
      const int32_t c = rd.get<int32_t>();
      if (c < 1 || c > 1024) fail(ErrorCode::kInternal, "expert-parallel dispatch: bad pair count");
      for (int32_t j = 0; j < c; ++j) tok_ids[i].push_back(rd.get<int32_t>());
      if (!exact)
        for (int32_t j = 0; j < c; ++j) tok_w[i].push_back(rd.get<float>());
    }
    ex.arr[src].row0 = rows;
    ex.arr[src].tokens = n;
    for (int32_t i = 0; i < n; ++i) {
      const float* xr = rd.floats(width);
      if (exact) {
        for (int32_t e : tok_ids[i]) {
          rid.push_back(e);
          rw.push_back(1.0f);
          rx.insert(rx.end(), xr, xr + width);
          ++rows;
          ++ex.arr[src].pairs;
        }
      } else {
        rx.insert(rx.end(), xr, xr + width);
        ex.arr[src].pairs += static_cast<int64_t>(tok_ids[i].size());
        ++rows;
      }
    }
    if (!exact) {
      // Pad to the widest token's count later; keep per-token lists.
      for (int32_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < tok_ids[i].size(); ++j) {
          rid.push_back(tok_ids[i][j]);
          rw.push_back(tok_w[i][j]);
        }
        rid.push_back(-1);  // token separator, replaced below
        rw.push_back(0.0f);
      }
    }
  }
  int64_t pairs_here = 0;
  for (const Exchange::Arrived& a : ex.arr) pairs_here += a.pairs;
  work_[layer] += pairs_here;

  // The local experts (id E pads partial rows: null).
  ExpertSet set;
  set.experts.assign(E + 1, nullptr);
  for (int64_t e = 0; e < E; ++e)
    if (p_.holds(layer, me, e) && !L.experts[e].gate.w.empty()) set.experts[e] = &L.experts[e];
  std::vector<const ExpertWeights*>& experts = set.experts;
  std::vector<float> ry(static_cast<size_t>(rows * width));
  if (rows) {
    int64_t kk = 1;
    std::vector<int32_t> ids2;
    std::vector<float> w2;
    if (exact) {
      ids2 = rid;
      w2 = rw;
    } else {
      // Rebuild [rows, kk] from the separated lists, padding with E (a null expert) and weight 0.
      std::vector<std::vector<std::pair<int32_t, float>>> per(rows);
      int64_t r = 0;
      for (size_t i = 0; i < rid.size(); ++i) {
        if (rid[i] < 0) {
          ++r;
          continue;
        }
        per[r].emplace_back(rid[i], rw[i]);
      }
      for (const auto& v : per) kk = std::max<int64_t>(kk, static_cast<int64_t>(v.size()));
      ids2.assign(rows * kk, static_cast<int32_t>(E));
      w2.assign(rows * kk, 0.0f);
      for (int64_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < per[i].size(); ++j) {
          ids2[i * kk + j] = per[i][j].first;
          w2[i * kk + j] = per[i][j].second;
        }
    }
    for (int32_t e : ids2)
      if (e < E && !experts[e])
        fail(ErrorCode::kInternal, "expert parallelism: rank " + std::to_string(me) +
                                       " received tokens for expert " + std::to_string(e) + " of layer " +
                                       std::to_string(layer) + ", which it does not hold");
    Tensor X = b_.empty(DType::kF32, rows, width), Y = b_.empty(DType::kF32, rows, width);
    Tensor I = b_.empty(DType::kI32, rows, kk), W = b_.empty(DType::kF32, rows, kk);
    b_.copy_from_host(rx.data(), X);
    b_.copy_from_host_i32(ids2.data(), I);
    b_.copy_from_host(w2.data(), W);
    b_.prepare_experts(set);
    moert::routed_experts(b_, set, X, I, W, Y, ex.mode);
    b_.copy_to_host(Y, ry.data());
  }

  // Combine: each source gets its rows back, in the order it sent them.
  ex.back.assign(R, Bytes());
  for (int src = 0; src < R; ++src) {
    Writer w(ex.back[src]);
    const int64_t n = exact ? ex.arr[src].pairs : ex.arr[src].tokens;
    w.put_floats(ry.data() + ex.arr[src].row0 * width, n * width);
  }
  start(ex, ex.back, ex.got);
}

void ExpertParallel::finish(MoeExchange& base, Tensor& out) {
  Exchange& ex = static_cast<Exchange&>(base);
  wait(ex);
  const int R = size();
  const int64_t T = ex.T, H = ex.H, K = ex.K;
  if (T == 0) return;
  // The rows that came back, concatenated, and per (token, slot) the row to add: then the backend's combine
  // adds weight * row per token in ascending key, from zero (Backend::moe_combine, as the single-process MoE
  // layer does). Exact: K rows per token, keyed by expert id, with the router's weights. Partial sums: one
  // row per rank that computed some of the token's experts, keyed by rank, with weight 1.
  const bool exact = opts_.combine == CombineMode::kExact;
  const int64_t C = exact ? K : R;
  std::vector<int32_t> slot_row(static_cast<size_t>(T * C), -1), order(static_cast<size_t>(T * C), 0);
  std::vector<float> w(static_cast<size_t>(T * C), 1.0f);
  std::vector<float> rows;
  int64_t nrows = 0;
  for (int r = 0; r < R; ++r) {
    const size_t per = exact ? ex.sent[r].size() : ex.toks[r].size();
    if (static_cast<int64_t>(ex.got[r].size()) != static_cast<int64_t>(per) * H * 4)
      fail(ErrorCode::kInternal, "expert-parallel combine: wrong size from rank " + std::to_string(r));
    const float* p = reinterpret_cast<const float*>(ex.got[r].data());
    rows.insert(rows.end(), p, p + per * H);
    for (size_t i = 0; i < per; ++i) {
      const int64_t at = exact ? ex.sent[r][i].first * K + ex.sent[r][i].second : ex.toks[r][i] * C + r;
      slot_row[at] = static_cast<int32_t>(nrows + static_cast<int64_t>(i));
      order[at] = exact ? ex.ids[at] : r;
      if (exact) w[at] = ex.wh[at];
    }
    nrows += static_cast<int64_t>(per);
  }
  Tensor Y, SR = b_.empty(DType::kI32, T, C), W = b_.empty(DType::kF32, T, C),
            O = b_.empty(DType::kI32, T, C);
  if (nrows > 0) {
    Y = b_.empty(DType::kF32, nrows, H);
    b_.copy_from_host(rows.data(), Y);
  }
  b_.copy_from_host_i32(slot_row.data(), SR);
  b_.copy_from_host(w.data(), W);
  b_.copy_from_host_i32(order.data(), O);
  b_.moe_combine(Y, SR, W, O, out);
}

Placement rebalance(ExpertParallel& ep, DeepseekNetwork& model, const EplbOptions& opts, int slots_per_rank) {
  const std::vector<int64_t> load = ep.gather_load();
  const Placement& cur = ep.placement();
  Placement next = eplb_placement(load, cur.num_layers(), cur.experts, cur.ranks,
                                  slots_per_rank > 0 ? slots_per_rank : cur.slots_per_rank, opts);
  ep.set_placement(next);
  model.rebind_experts(ep.bind_filter());
  ep.reset_load();
  return next;
}

}  // namespace moert::ep
