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
  sets_.clear();  // bound anew by the model after a placement change (rebalance)
  sets_.resize(p_.num_layers());
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
      {"strict rank limit", opts_.strict_rank_limit ? 1 : 0},
      {"rows moved in backend memory (transport and device)", t_->moves_rows(b_.device()) ? 1 : 0}};
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

// One all-to-all of an exchange: per rank r a control message ctl_out[r] (host bytes) and n_out[r] rows of
// rows_out (a packed backend tensor, ranks in order); it receives ctl_in[r] and n_in[r] rows per rank into
// rows_in, concatenated in rank order. When the transport moves backend memory (moves_rows) the rows go
// directly (a control round first tells each receiver its counts, unless it knows them: counts_known);
// otherwise each message carries its rows after the control bytes (one round, through the host).
struct ExpertParallel::Round {
  std::vector<Bytes> ctl_out, ctl_in;
  Tensor rows_out, rows_in;
  std::vector<int64_t> n_out, n_in;
  bool counts_known = false;
  int64_t width = 0;
  DType dtype = DType::kF32;           // the rows' (host messages carry them as F32)
  std::shared_ptr<void> ready;         // direct: the backend's queue point after rows_out was written
  std::vector<Bytes> msg_out, msg_in;  // the control round (direct) or the whole messages (through the host)
};

// One microbatch's exchange for one MoE layer: host copies of its routing, the two rounds, and what to
// send back. The lane task (when overlapping) writes only the round it runs, which lives here until it
// ends.
struct ExpertParallel::Exchange final : MoeExchange {
  ~Exchange() override {
    if (pending.valid()) pending.wait();
  }
  int64_t layer = 0, T = 0, K = 0;
  const LayerWeights* L = nullptr;
  ActMode mode = ActMode::kF32;
  std::vector<float> wh;      // [T, K]
  std::vector<int32_t> ids;   // [T, K]
  std::vector<int32_t> dest;  // [T, K]: the rank computing each pair
  Round dispatch, combine;
  std::vector<std::vector<std::pair<int32_t, int32_t>>> sent;  // per rank: (token, slot) of each pair sent
  std::vector<std::vector<int32_t>> toks;                      // per rank: tokens sent, in order
  struct Arrived {
    int64_t tokens = 0, pairs = 0;
  };
  std::vector<Arrived> arr;  // per source rank
  std::future<void> pending;
};

namespace {

int64_t total(const std::vector<int64_t>& n) {
  int64_t s = 0;
  for (int64_t v : n) s += v;
  return s;
}

}  // namespace

void ExpertParallel::start(Exchange& ex, Round& rd) {
  const int R = size();
  const bool direct = t_->moves_rows(b_.device());
  rd.msg_out.assign(R, Bytes());
  if (!direct) {
    // Through the host: [rows][control bytes][control][rows' floats] per rank, packed here (this thread owns
    // the backend), exchanged on the lane when overlapping.
    std::vector<float> host(static_cast<size_t>(total(rd.n_out) * rd.width));
    if (!host.empty()) b_.copy_to_host(rd.rows_out, host.data());
    int64_t r0 = 0;
    for (int r = 0; r < R; ++r) {
      Writer w(rd.msg_out[r]);
      w.put<int32_t>(static_cast<int32_t>(rd.n_out[r]));
      w.put<int32_t>(static_cast<int32_t>(rd.ctl_out[r].size()));
      rd.msg_out[r].insert(rd.msg_out[r].end(), rd.ctl_out[r].begin(), rd.ctl_out[r].end());
      w.put_floats(host.data() + r0 * rd.width, rd.n_out[r] * rd.width);
      r0 += rd.n_out[r];
    }
  } else if (!rd.counts_known) {
    for (int r = 0; r < R; ++r) {
      Writer w(rd.msg_out[r]);
      w.put<int32_t>(static_cast<int32_t>(rd.n_out[r]));
      rd.msg_out[r].insert(rd.msg_out[r].end(), rd.ctl_out[r].begin(), rd.ctl_out[r].end());
    }
  }
  // Directly: the control round (unless the counts are known), then the receiving tensor and the rows.
  auto control = [this, &rd] {
    t_->all_to_all(rd.msg_out, rd.msg_in);
    rd.n_in.assign(size(), 0);
    rd.ctl_in.assign(size(), Bytes());
    for (int s = 0; s < size(); ++s) {
      Reader r(rd.msg_in[s]);
      rd.n_in[s] = r.get<int32_t>();
      rd.ctl_in[s].assign(rd.msg_in[s].begin() + 4, rd.msg_in[s].end());
    }
  };
  auto receive = [this, &rd] {
    const int64_t n = total(rd.n_in);
    rd.rows_in = n ? b_.empty(rd.dtype, n, rd.width) : Tensor{};
  };
  // Where ops are queued (CUDA), the receiving tensor is taken from the backend's pool on this thread, and
  // the exchange waits for a queue point after that: a block the host freed may still be read by queued
  // kernels (the pool is stream-ordered for this thread's work only), and the rows' writers are queued too.
  // So this thread waits for the control round (run in the lane's order, as every collective, when
  // overlapping); only the rows overlap the other microbatch. On the CPU ops are done when they return and
  // the lane does it all.
  const bool queued = direct && b_.device() != DeviceKind::kCpu;
  if (!lane_ && opts_.overlap) lane_ = std::make_unique<ExchangeLane>();
  if (queued) {
    if (!rd.counts_known) {
      if (opts_.overlap)
        lane_->submit(control).get();
      else
        control();
    }
    receive();
    if (opts_.overlap) rd.ready = b_.queue_point();
  }
  auto run = [this, &rd, direct, queued, control, receive] {
    if (!direct) {
      t_->all_to_all(rd.msg_out, rd.msg_in);
      return;
    }
    if (!queued) {
      if (!rd.counts_known) control();
      receive();
    }
    t_->all_to_all_rows(b_, rd.rows_out, rd.n_out, rd.rows_in, rd.n_in, rd.ready);
  };
  if (!opts_.overlap) {
    run();
    return;
  }
  ex.pending = lane_->submit(run);
}

void ExpertParallel::wait(Exchange& ex, Round& rd) {
  if (ex.pending.valid()) ex.pending.get();  // rethrows the transport's error
  if (t_->moves_rows(b_.device())) return;
  // Through the host: split the messages, and the rows into one tensor.
  const int R = size();
  std::vector<int64_t> n(R);
  rd.ctl_in.assign(R, Bytes());
  std::vector<const uint8_t*> rows(R);
  for (int s = 0; s < R; ++s) {
    Reader r(rd.msg_in[s]);
    n[s] = r.get<int32_t>();
    const int32_t c = r.get<int32_t>();
    if (c < 0 || 8 + static_cast<size_t>(c) + static_cast<size_t>(n[s] * rd.width) * sizeof(float) !=
                     rd.msg_in[s].size())
      fail(ErrorCode::kInternal,
           "expert-parallel message from rank " + std::to_string(s) + " has the wrong size");
    rd.ctl_in[s].assign(rd.msg_in[s].begin() + 8, rd.msg_in[s].begin() + 8 + c);
    rows[s] = rd.msg_in[s].data() + 8 + c;
  }
  if (rd.counts_known && n != rd.n_in)
    fail(ErrorCode::kInternal, "expert-parallel combine: a rank returned another number of rows");
  rd.n_in = n;
  const int64_t all = total(n);
  rd.rows_in = all ? b_.empty(rd.dtype, all, rd.width) : Tensor{};
  if (!all) return;
  std::vector<float> host(static_cast<size_t>(all * rd.width));
  size_t at = 0;
  for (int s = 0; s < R; ++s) {
    const size_t bytes = static_cast<size_t>(n[s] * rd.width) * sizeof(float);
    if (bytes) std::memcpy(reinterpret_cast<uint8_t*>(host.data()) + at, rows[s], bytes);
    at += bytes;
  }
  b_.copy_from_host(host.data(), rd.rows_in);
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

Tensor ExpertParallel::upload_i32(const std::vector<int32_t>& v) {
  Tensor t = b_.empty(DType::kI32, static_cast<int64_t>(v.size()), 1);
  b_.copy_from_host_i32(v.data(), t);
  return t;
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
  ex->K = ex->T ? ids.cols : 0;
  const int64_t T = ex->T, K = ex->K;
  const bool exact = opts_.combine == CombineMode::kExact;
  if (T && static_cast<int64_t>(L.experts.size()) != p_.experts)
    fail(ErrorCode::kInternal, "expert parallelism: the layer has " + std::to_string(L.experts.size()) +
                                   " experts, the placement " + std::to_string(p_.experts));
  // The routing comes to the host (T x K ids and weights) to plan the exchange; the rows stay where they are.
  ex->wh.resize(static_cast<size_t>(T * K));
  ex->ids.resize(static_cast<size_t>(T * K));
  if (T) {
    b_.copy_to_host(weights, ex->wh.data());
    b_.copy_to_host_i32(ids, ex->ids.data());
  }
  route(*ex);

  // Dispatch: per destination a control message, [n_tok] then per token [row][count][count expert ids]
  // [count weights (partial mode)], and the tokens' rows, gathered into one tensor in destination order.
  // `sent[r]` remembers (token, slot) of every pair sent to r, in order.
  Round& d = ex->dispatch;
  d.ctl_out.resize(R);
  d.n_out.assign(R, 0);
  d.width = L.router.k();    // every rank runs the same model: the hidden size
  d.dtype = b_.act_dtype();  // x's rows as they are (bf16 activations travel as bf16)
  ex->sent.resize(R);
  ex->toks.resize(R);
  const int32_t* dest = ex->dest.data();
  std::vector<int32_t> order;  // x's rows in the order they are sent
  for (int r = 0; r < R; ++r) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < K; ++s)
        if (dest[t * K + s] == r) {
          ex->toks[r].push_back(static_cast<int32_t>(t));
          break;
        }
    Writer w(d.ctl_out[r]);
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
    d.n_out[r] = static_cast<int64_t>(ex->toks[r].size());
    order.insert(order.end(), ex->toks[r].begin(), ex->toks[r].end());
  }
  if (!order.empty()) {
    d.rows_out = b_.empty(d.dtype, static_cast<int64_t>(order.size()), d.width);
    b_.gather_rows(x, upload_i32(order), d.rows_out);
  }
  start(*ex, d);
  return ex;
}

void ExpertParallel::compute(MoeExchange& base) {
  Exchange& ex = static_cast<Exchange&>(base);
  Round& d = ex.dispatch;
  wait(ex, d);
  const int R = size(), me = rank();
  const int64_t E = p_.experts, layer = ex.layer;
  const LayerWeights& L = *ex.L;
  const bool exact = opts_.combine == CombineMode::kExact;
  const int64_t width = d.width;

  // Local experts over what arrived (d.rows_in: the tokens, source by source). Exact: one row per (token,
  // expert) pair, gathered from the token rows, weight 1; partial: the token rows themselves, each with its
  // experts on this rank (the others padded with id E, which is null) and their weights.
  ex.arr.assign(R, {});
  std::vector<int32_t> rid;                                 // exact: the expert of each pair row
  std::vector<int32_t> from;                                // exact: each pair row's token row in d.rows_in
  std::vector<std::vector<std::pair<int32_t, float>>> per;  // partial: each token row's (expert, weight)
  int64_t rows = 0, token_row = 0;
  for (int src = 0; src < R; ++src) {
    Reader rd(d.ctl_in[src]);
    const int32_t n = rd.get<int32_t>();
    if (n != d.n_in[src]) fail(ErrorCode::kInternal, "expert-parallel dispatch: token count mismatch");
    ex.arr[src].tokens = n;
    for (int32_t i = 0; i < n; ++i, ++token_row) {
      rd.get<int32_t>();  // the origin's row (the origin keeps its own order)
      const int32_t c = rd.get<int32_t>();
      if (c < 1 || c > 1024) fail(ErrorCode::kInternal, "expert-parallel dispatch: bad pair count");
      std::vector<int32_t> e(c);
      for (int32_t j = 0; j < c; ++j) e[j] = rd.get<int32_t>();
      ex.arr[src].pairs += c;
      if (exact) {
        for (int32_t j = 0; j < c; ++j) {
          rid.push_back(e[j]);
          from.push_back(static_cast<int32_t>(token_row));
        }
        rows += c;
      } else {
        per.emplace_back();
        for (int32_t j = 0; j < c; ++j) per.back().emplace_back(e[j], rd.get<float>());
        ++rows;
      }
    }
  }
  int64_t pairs_here = 0;
  for (const Exchange::Arrived& a : ex.arr) pairs_here += a.pairs;
  work_[layer] += pairs_here;

  // The local experts (id E pads partial rows: null), prepared once per layer and placement (on a device
  // that is an upload of its weight table).
  if (!sets_[layer]) {
    auto fresh = std::make_unique<ExpertSet>();
    fresh->experts.assign(E + 1, nullptr);
    for (int64_t e = 0; e < E; ++e)
      if (p_.holds(layer, me, e) && !L.experts[e].gate.w.empty()) fresh->experts[e] = &L.experts[e];
    b_.prepare_experts(*fresh);
    sets_[layer] = std::move(fresh);
  }
  const ExpertSet& set = *sets_[layer];
  Round& c = ex.combine;
  c.width = width;
  // Exact: each row is one expert's output, already in the activation dtype (its weight, 1, rounds
  // nothing); partial sums are sums, kept in F32.
  c.dtype = exact ? b_.act_dtype() : DType::kF32;
  if (rows) {
    int64_t kk = 1;
    std::vector<int32_t> ids2;
    std::vector<float> w2;
    if (exact) {
      ids2 = rid;
      w2.assign(rid.size(), 1.0f);
    } else {
      // [rows, kk], padded with E (a null expert) and weight 0.
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
      if (e < E && !set.experts[e])
        fail(ErrorCode::kInternal, "expert parallelism: rank " + std::to_string(me) +
                                       " received tokens for expert " + std::to_string(e) + " of layer " +
                                       std::to_string(layer) + ", which it does not hold");
    Tensor X = d.rows_in;
    if (exact) {
      X = b_.empty(d.dtype, rows, width);
      b_.gather_rows(d.rows_in, upload_i32(from), X);
    }
    Tensor I = b_.empty(DType::kI32, rows, kk), W = b_.empty(DType::kF32, rows, kk);
    b_.copy_from_host_i32(ids2.data(), I);
    b_.copy_from_host(w2.data(), W);
    c.rows_out = b_.empty(c.dtype, rows, width);
    moert::routed_experts(b_, set, X, I, W, c.rows_out, ex.mode);
  }
  d.rows_in = Tensor{};

  // Combine: each source gets its rows back, in the order it sent them (the counts are known both ways).
  c.ctl_out.assign(R, Bytes());
  c.n_out.assign(R, 0);
  c.n_in.assign(R, 0);
  for (int r = 0; r < R; ++r) {
    c.n_out[r] = exact ? ex.arr[r].pairs : ex.arr[r].tokens;
    c.n_in[r] = static_cast<int64_t>(exact ? ex.sent[r].size() : ex.toks[r].size());
  }
  c.counts_known = true;
  start(ex, c);
}

void ExpertParallel::finish(MoeExchange& base, Tensor& out) {
  Exchange& ex = static_cast<Exchange&>(base);
  Round& c = ex.combine;
  wait(ex, c);
  const int R = size();
  const int64_t T = ex.T, K = ex.K;
  if (T == 0) return;
  // The rows that came back (c.rows_in, rank by rank) and per (token, slot) the row to add: then the
  // backend's combine adds weight * row per token in ascending key, from zero (Backend::moe_combine, as the
  // single-process MoE layer does). Exact: K rows per token, keyed by expert id, with the router's weights.
  // Partial sums: one row per rank that computed some of the token's experts, keyed by rank, with weight 1.
  const bool exact = opts_.combine == CombineMode::kExact;
  const int64_t C = exact ? K : R;
  std::vector<int32_t> slot_row(static_cast<size_t>(T * C), -1), order(static_cast<size_t>(T * C), 0);
  std::vector<float> w(static_cast<size_t>(T * C), 1.0f);
  int64_t nrows = 0;
  for (int r = 0; r < R; ++r) {
    const size_t per = static_cast<size_t>(c.n_in[r]);
    for (size_t i = 0; i < per; ++i) {
      const int64_t at = exact ? ex.sent[r][i].first * K + ex.sent[r][i].second : ex.toks[r][i] * C + r;
      slot_row[at] = static_cast<int32_t>(nrows + static_cast<int64_t>(i));
      order[at] = exact ? ex.ids[at] : r;
      if (exact) w[at] = ex.wh[at];
    }
    nrows += static_cast<int64_t>(per);
  }
  Tensor SR = b_.empty(DType::kI32, T, C), W = b_.empty(DType::kF32, T, C), O = b_.empty(DType::kI32, T, C);
  b_.copy_from_host_i32(slot_row.data(), SR);
  b_.copy_from_host(w.data(), W);
  b_.copy_from_host_i32(order.data(), O);
  b_.moe_combine(c.rows_in, SR, W, O, out);
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
