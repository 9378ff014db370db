// The Backend ops' argument checks (runtime/backend/backend.cpp), on the CPU backend: for every op a call
// with consistent arguments runs, and the same call with one wrong argument throws Error(kInternal) whose
// message names the op and that argument. The CUDA backend runs the same checks (they live in Backend).
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "util/error.h"
#include "weights/safetensors.h"

namespace moert {
namespace {

// Small shapes of one MLA layer: 2 heads, nope 4, rope 2, vdim 3, latent 5; 3 tokens; 8 experts of 2.
constexpr int64_t kT = 3, kHeads = 2, kNope = 4, kRope = 2, kVdim = 3, kLat = 5, kQk = kNope + kRope;
constexpr int64_t kHidden = 8, kInter = 4, kExperts = 8, kTopK = 2, kPageRows = 4, kWidth = kLat + kRope;

class OpChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    b = make_cpu_backend(1);
    x = f32(kT, kHidden);
    ids = i32({1, 0, 2});
    positions = i32({0, 1, 2});
    zeros = i32({0, 0, 0});
    logit_ids = i32({1, 5, 0, 7, 3, 4});
    logit_ids.rows = kT;
    logit_ids.cols = logit_ids.ld = kTopK;
    pool.pool = f32(2, kPageRows * kWidth);
    pool.page_rows = kPageRows;
    pool.page_stride = kPageRows * kWidth;
    pool.width = kWidth;
    kv.indptr = i32({0, 1});
    kv.pages = i32({0});
    kv.last_page_len = i32({kT});
    kv.kv_len = i32({kT});
    kv.seqs = 1;
    kv.max_kv_len = kT;
    for (int64_t e = 0; e < kExperts; ++e) {
      experts.push_back({weight(kInter, kHidden), weight(kInter, kHidden), weight(kHidden, kInter)});
    }
    for (const ExpertWeights& e : experts) set.experts.push_back(&e);
    b->prepare_experts(set);
    b->moe_group(logit_ids, set, grouping);
  }

  Tensor f32(int64_t rows, int64_t cols) {
    Tensor t = b->empty(DType::kF32, rows, cols);
    b->fill_zero(t);
    return t;
  }
  Tensor i32(const std::vector<int32_t>& v) {
    Tensor t = b->empty(DType::kI32, static_cast<int64_t>(v.size()), 1);
    b->copy_from_host_i32(v.data(), t);
    return t;
  }
  WeightMatrix weight(int64_t n, int64_t k) {
    WeightMatrix w;
    w.w = f32(n, k);
    return w;
  }

  std::unique_ptr<Backend> b;
  Tensor x, ids, positions, zeros, logit_ids;
  LatentPool pool;
  PagedKv kv;
  std::vector<ExpertWeights> experts;
  ExpertSet set;
  MoeGrouping grouping;
};

// One op called twice: `good` with consistent arguments (must run), `bad` with `arg` wrong (must throw).
struct Case {
  const char* op;
  const char* arg;
  std::function<void()> good, bad;
};

void expect_rejected(const Case& c) {
  SCOPED_TRACE(std::string(c.op) + " / " + c.arg);
  EXPECT_NO_THROW(c.good());
  try {
    c.bad();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
    const std::string want = std::string("backend op ") + c.op + ": " + c.arg;
    EXPECT_EQ(std::string(e.what()).rfind(want, 0), 0u) << e.what();
  }
}

TEST_F(OpChecksTest, EveryOpRejectsAWrongArgumentByName) {
  Backend& be = *b;
  const WeightMatrix w = weight(4, kHidden), square = weight(kHidden, kHidden),
                     kv_b = weight(kHeads * (kNope + kVdim), kLat);
  Tensor out4 = f32(kT, 4), norm_w = f32(1, kHidden);
  Tensor q = f32(kT, kHeads * kQk), k = f32(kT, kHeads * kQk), v = f32(kT, kHeads * kVdim);
  Tensor o = f32(kT, kHeads * kVdim), q_lat = f32(kT, kHeads * kLat), o_lat = f32(kT, kHeads * kLat);
  Tensor q_rope = q.slice_cols(kNope, q.cols - kNope), inv_freq = f32(1, kRope / 2);
  Tensor kvb = f32(kT, kHeads * (kNope + kVdim)), k_rope = f32(kT, kRope), rows = f32(kT, kWidth);
  Tensor logits = f32(kT, kExperts), route_ids = be.empty(DType::kI32, kT, kTopK), route_w = f32(kT, kTopK);
  Tensor xg = f32(grouping.rows, kHidden), gate = f32(grouping.rows, kInter),
         yg = f32(grouping.rows, kHidden);
  Tensor combine_w = f32(kT, kTopK), y = f32(kT, kHidden);
  Tensor table = f32(10, kHidden), gather_src = f32(5, kHidden);
  // An index tensor read with a row stride (a column of a [3, 2] table): the ops take packed columns.
  Tensor strided = be.empty(DType::kI32, kT, 2).slice_cols(0, 1);
  be.fill_zero(strided);
  RoutingParams p;
  p.experts = kExperts;
  p.top_k = kTopK;
  p.grouped = false;
  RoutingParams p_too_many = p;
  p_too_many.top_k = kExperts + 1;
  WeightMatrix fp8_no_scales;
  fp8_no_scales.w = be.empty(DType::kF8E4M3, 4, kHidden);
  SamplingRng rng(1);
  const std::vector<SampleRow> sample_rows(kT, SampleRow{SamplingParams{}, &rng, nullptr});
  std::vector<SampleRow> no_rng = sample_rows;
  no_rng[1].rng = nullptr;
  int32_t sampled[kT];
  float host[kT * kHidden];
  TensorInfo info;
  info.name = "model.norm.weight";
  info.dtype = DType::kF32;
  std::vector<float> bytes(kHidden);
  info.data = reinterpret_cast<const uint8_t*>(bytes.data());
  info.nbytes = bytes.size() * sizeof(float);

  const std::vector<Case> cases = {
      {"weight", "model.norm.weight", [&] { be.weight(info, 1, kHidden); },
       [&] { be.weight(info, 2, kHidden); }},
      {"copy_to_host", "src", [&] { be.copy_to_host(x, host); }, [&] { be.copy_to_host(ids, host); }},
      {"embedding", "out", [&] { be.embedding(table, ids, x); }, [&] { be.embedding(table, ids, out4); }},
      {"embedding", "ids", [&] { be.embedding(table, ids, x); }, [&] { be.embedding(table, strided, x); }},
      {"rmsnorm", "w", [&] { be.rmsnorm(x, norm_w, 1e-6f, x); },
       [&] { be.rmsnorm(x, norm_w.slice_cols(0, kHidden - 1), 1e-6f, x); }},
      {"linear", "out", [&] { be.linear(x, w, out4, ActMode::kF32); },
       [&] { be.linear(x, w, x, ActMode::kF32); }},
      // A GEMM's output must not overlap its input.
      {"linear", "out overlaps x", [&] { be.linear(x, square, y, ActMode::kF32); },
       [&] { be.linear(x, square, x, ActMode::kF32); }},
      {"linear", "w", [&] { be.linear(x, w, out4, ActMode::kF32); },
       [&] { be.linear(x, fp8_no_scales, out4, ActMode::kF32); }},
      {"rope", "positions", [&] { be.rope(q_rope, kHeads, kQk, kRope, positions, inv_freq, 1.0f); },
       [&] { be.rope(q_rope, kHeads, kQk, kRope, positions.slice_rows(0, 2), inv_freq, 1.0f); }},
      // The CPU did not check out's rows (the CUDA backend did).
      {"silu_mul", "out", [&] { be.silu_mul(x, x, x); },
       [&] {
         Tensor out = x.slice_rows(0, 2);
         be.silu_mul(x, x, out);
       }},
      {"add", "y", [&] { be.add(x, y); },
       [&] {
         Tensor y2 = y.slice_cols(0, 7);
         be.add(x, y2);
       }},
      // The CPU read a strided index column (the CUDA backend rejected it).
      {"gather_rows", "rows", [&] { be.gather_rows(gather_src, ids, x); },
       [&] { be.gather_rows(gather_src, strided, x); }},
      {"attention_expanded", "out",
       [&] { be.attention_expanded(q, k, v, kHeads, positions, zeros, 0.5f, o); },
       [&] {
         Tensor o2 = o.slice_rows(0, 2);
         be.attention_expanded(q, k, v, kHeads, positions, zeros, 0.5f, o2);
       }},
      {"mla_absorb_q", "q_lat",
       [&] { be.mla_absorb_q(q, kQk, kv_b, kHeads, kNope, kVdim, q_lat, ActMode::kF32); },
       [&] {
         Tensor q_lat2 = q_lat.slice_rows(0, 2);
         be.mla_absorb_q(q, kQk, kv_b, kHeads, kNope, kVdim, q_lat2, ActMode::kF32);
       }},
      // The CPU did not check out's rows (the CUDA backend did).
      {"mla_absorb_out", "out",
       [&] { be.mla_absorb_out(o_lat, kv_b, kHeads, kNope, kVdim, o, ActMode::kF32); },
       [&] {
         Tensor o2 = o.slice_rows(0, 2);
         be.mla_absorb_out(o_lat, kv_b, kHeads, kNope, kVdim, o2, ActMode::kF32);
       }},
      // positions' rows were the check that had drifted between the backends.
      {"attention_latent", "positions",
       [&] {
         be.attention_latent(q_lat, q_rope, kQk, pool, kv, zeros, kHeads, kLat, kRope, positions, 0.5f,
                             o_lat);
       },
       [&] {
         be.attention_latent(q_lat, q_rope, kQk, pool, kv, zeros, kHeads, kLat, kRope,
                             positions.slice_rows(0, 2), 0.5f, o_lat);
       }},
      {"attention_latent", "cache",
       [&] {
         be.attention_latent(q_lat, q_rope, kQk, pool, kv, zeros, kHeads, kLat, kRope, positions, 0.5f,
                             o_lat);
       },
       [&] {
         LatentPool wider = pool;  // rows wider than lat + rope
         wider.width = kWidth + 1;
         wider.page_stride = kPageRows * wider.width;
         be.attention_latent(q_lat, q_rope, kQk, wider, kv, zeros, kHeads, kLat, kRope, positions, 0.5f,
                             o_lat);
       }},
      {"mla_expand_kv", "v", [&] { be.mla_expand_kv(kvb, k_rope, kHeads, kNope, kVdim, k, v); },
       [&] {
         Tensor v2 = v.slice_cols(0, 5);
         be.mla_expand_kv(kvb, k_rope, kHeads, kNope, kVdim, k, v2);
       }},
      {"cache_write", "slots", [&] { be.cache_write(rows, pool, positions); },
       [&] { be.cache_write(rows, pool, positions.slice_rows(0, 2)); }},
      {"cache_gather", "out", [&] { be.cache_gather(pool, positions, rows); },
       [&] {
         Tensor r2 = rows.slice_cols(0, kWidth - 1);
         be.cache_gather(pool, positions, r2);
       }},
      // The CPU did not check the outputs' rows (the CUDA backend did).
      {"moe_route", "weights", [&] { be.moe_route(logits, Tensor{}, p, route_ids, route_w); },
       [&] {
         Tensor w2 = route_w.slice_rows(0, 2);
         be.moe_route(logits, Tensor{}, p, route_ids, w2);
       }},
      {"moe_route", "p", [&] { be.moe_route(logits, Tensor{}, p, route_ids, route_w); },
       [&] { be.moe_route(logits, Tensor{}, p_too_many, route_ids, route_w); }},
      {"moe_group", "ids",
       [&] {
         MoeGrouping g;
         be.moe_group(logit_ids, set, g);
       },
       [&] {
         MoeGrouping g;
         be.moe_group(route_w, set, g);
       }},
      {"moe_expert_linear", "x",
       [&] { be.moe_expert_linear(xg, grouping, set, ExpertProj::kGate, gate, ActMode::kF32); },
       [&] {
         be.moe_expert_linear(xg.slice_rows(0, grouping.rows - 1), grouping, set, ExpertProj::kGate, gate,
                              ActMode::kF32);
       }},
      {"moe_combine", "weights", [&] { be.moe_combine(yg, grouping.slot_row, combine_w, logit_ids, y); },
       [&] { be.moe_combine(yg, grouping.slot_row, combine_w.slice_cols(0, 1), logit_ids, y); }},
      {"sample", "logits", [&] { be.sample(logits, sample_rows, nullptr, sampled); },
       [&] { be.sample(logits.slice_rows(0, 2), sample_rows, nullptr, sampled); }},
      {"sample", "rows", [&] { be.sample(logits, sample_rows, nullptr, sampled); },
       [&] { be.sample(logits, no_rng, nullptr, sampled); }},
  };
  for (const Case& c : cases) expect_rejected(c);
}

// What only the compute can see (an index tensor's contents) is checked there, naming the op too.
TEST_F(OpChecksTest, IndexContentsOutOfRangeAreRejectedByName) {
  Tensor table = f32(10, kHidden), bad_ids = i32({1, 10, 2});
  const std::vector<Case> cases = {
      {"embedding", "ids[1] = 10", [&] { b->embedding(table, ids, x); },
       [&] { b->embedding(table, bad_ids, x); }},
      {"gather_rows", "rows[1] = 10", [&] { b->gather_rows(table, ids, x); },
       [&] { b->gather_rows(table, bad_ids, x); }},
      {"moe_group", "ids[1, 0] = 8",
       [&] {
         MoeGrouping g;
         b->moe_group(logit_ids, set, g);
       },
       [&] {
         Tensor e = i32({1, 5, 8, 7, 3, 4});
         e.rows = kT;
         e.cols = e.ld = kTopK;
         MoeGrouping g;
         b->moe_group(e, set, g);
       }},
  };
  for (const Case& c : cases) expect_rejected(c);
}

// The CPU's kernels are fp32: its activation dtype is F32 and cannot be set to BF16, and every op that takes
// an activation rejects a BF16 one by name (the CUDA backend accepts them: tests/cuda/cuda_bf16_test.cpp).
TEST_F(OpChecksTest, TheCpuRejectsBf16Activations) {
  EXPECT_FALSE(b->supports_bf16_activations());
  EXPECT_EQ(b->act_dtype(), DType::kF32);
  try {
    b->set_act_dtype(DType::kBF16);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("no bf16 activation kernels"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b->act_dtype(), DType::kF32);
  try {
    b->set_act_dtype(DType::kF16);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  b->set_act_dtype(DType::kF32);
  EXPECT_EQ(b->act_dtype(), DType::kF32);

  Backend& be = *b;
  Tensor xb = be.empty(DType::kBF16, kT, kHidden), norm_w = f32(1, kHidden), gate = f32(kT, kInter);
  Tensor gate_b = be.empty(DType::kBF16, kT, kInter);
  be.fill_zero(xb);
  be.fill_zero(gate_b);
  const WeightMatrix w = weight(kInter, kHidden);
  float host[kT * kHidden] = {};
  const std::vector<Case> cases = {
      {"rmsnorm", "x", [&] { be.rmsnorm(x, norm_w, 1e-6f, x); }, [&] { be.rmsnorm(xb, norm_w, 1e-6f, x); }},
      {"rmsnorm", "out", [&] { be.rmsnorm(x, norm_w, 1e-6f, x); }, [&] { be.rmsnorm(x, norm_w, 1e-6f, xb); }},
      {"linear", "x", [&] { be.linear(x, w, gate, ActMode::kF32); },
       [&] { be.linear(xb, w, gate, ActMode::kF32); }},
      {"linear", "out", [&] { be.linear(x, w, gate, ActMode::kF32); },
       [&] { be.linear(x, w, gate_b, ActMode::kF32); }},
      {"silu_mul", "gate", [&] { be.silu_mul(gate, gate, gate); }, [&] { be.silu_mul(gate_b, gate, gate); }},
      {"add", "x", [&] { be.add(x, x); }, [&] { be.add(xb, x); }},
      {"gather_rows", "out", [&] { be.gather_rows(f32(5, kHidden), ids, x); },
       [&] { be.gather_rows(f32(5, kHidden), ids, xb); }},
      {"copy_to_host", "src", [&] { be.copy_to_host(x, host); }, [&] { be.copy_to_host(xb, host); }},
      {"copy_from_host", "dst", [&] { be.copy_from_host(host, x); }, [&] { be.copy_from_host(host, xb); }},
  };
  for (const Case& c : cases) expect_rejected(c);
  try {
    be.rmsnorm(xb, norm_w, 1e-6f, x);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is BF16 [3, 8], expected F32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moert
