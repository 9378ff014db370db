#include "model/deepseek_network.h"

#include <algorithm>
#include <string>

#include "model/moe_ffn.h"
#include "model/rope_table.h"
#include "util/error.h"

namespace moert {

DeepseekNetwork::DeepseekNetwork(ModelConfig cfg, std::shared_ptr<WeightStore> store, Backend& backend,
                                 ModelOptions opts)
    : cfg_(std::move(cfg)), store_(std::move(store)), backend_(backend), opts_(opts) {
  w_ = bind_model_weights(cfg_, *store_, backend_, opts_.load_mtp, opts_.bind_expert);
  const std::vector<float> f = rope_inv_freq(cfg_);
  inv_freq_ = backend_.empty(DType::kF32, 1, static_cast<int64_t>(std::max<size_t>(f.size(), 1)));
  if (!f.empty()) {
    Tensor row = inv_freq_.slice_cols(0, static_cast<int64_t>(f.size()));
    backend_.copy_from_host(f.data(), row);
  }
  prepare_expert_sets();
  rope_factor_ = static_cast<float>(cfg_.rope_attention_factor());
  softmax_scale_ = static_cast<float>(cfg_.softmax_scale());
  router_ = cfg_.routing();
}

int64_t DeepseekNetwork::cache_layers() const {
  return cfg_.num_hidden_layers + static_cast<int64_t>(w_.mtp.size());
}

void DeepseekNetwork::prepare_expert_sets() {
  auto prepare = [&](LayerWeights& L) {
    if (!L.moe) return;
    L.routed.experts.assign(L.experts.size(), nullptr);
    for (size_t e = 0; e < L.experts.size(); ++e)
      if (!L.experts[e].gate.w.empty()) L.routed.experts[e] = &L.experts[e];
    backend_.prepare_experts(L.routed);
  };
  for (LayerWeights& L : w_.layers) prepare(L);
  for (MtpWeights& m : w_.mtp) prepare(m.layer);
}

DeepseekNetwork::GraphSlot* DeepseekNetwork::graph_slot(const std::vector<SequenceStep>& steps,
                                                        int64_t sampling_words) {
  if (!opts_.graphs || opts_.moe_hook || !backend_.graphs_supported()) return nullptr;
  if (!StepBatch::decode_only(steps, opts_.attention)) return nullptr;
  const int64_t n = static_cast<int64_t>(steps.size());
  if (n > opts_.max_graph_batch || !steps[0].kv) return nullptr;
  int64_t bucket = 1;
  while (bucket < n) bucket *= 2;
  GraphSlot& slot = graphs_[bucket];
  if (slot.failures >= 2) return nullptr;  // this bucket cannot be captured here: eager from now on
  const LatentCache* cache = steps[0].kv->cache();
  const int64_t fixed = StepBatch::fixed_table_size(bucket, cache->total_pages());
  if (slot.cache != cache) {
    slot = GraphSlot();
    slot.cache = cache;
    slot.layout.rows = bucket;
  }
  if (slot.layout.table.rows < fixed + 1 + sampling_words) {
    // The sampling rows follow the fixed tables; a longer table is a new address: capture again.
    const int64_t tail = std::max<int64_t>(2 * sampling_words, bucket * (kSampleParamWords + 64));
    slot.layout.table = backend_.empty(DType::kI32, fixed + 1 + tail, 1);
    slot.graph.reset();
  }
  return &slot;
}

StepBatch DeepseekNetwork::make_batch(std::vector<SequenceStep> steps,
                                      const std::vector<SampleRow>* sampling) {
  const bool halves = opts_.moe_hook && opts_.moe_hook->two_microbatches();
  if (GraphSlot* slot = graph_slot(steps, sampling ? StepBatch::sampling_words(*sampling) : 0)) {
    bool same_cache = true;
    for (const SequenceStep& st : steps) same_cache &= st.kv && st.kv->cache() == slot->cache;
    if (same_cache)
      return StepBatch(backend_, cfg_, opts_.attention, std::move(steps), false, &slot->layout, sampling);
  }
  return StepBatch(backend_, cfg_, opts_.attention, std::move(steps), halves, nullptr, sampling);
}

void DeepseekNetwork::attention(const LayerWeights& L, int64_t slot, Tensor& xn, Tensor& out,
                                const BatchPart& part) {
  Backend& b = backend_;
  const ActMode mode = opts_.act_mode;
  const AttentionWeights& a = L.attn;
  const int64_t T = xn.rows, heads = cfg_.num_attention_heads, nope = cfg_.qk_nope_head_dim,
                rope = cfg_.qk_rope_head_dim, vdim = cfg_.v_head_dim, lat = cfg_.kv_lora_rank,
                qk = nope + rope;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const Tensor& positions = part.positions;
  const DType A = b.act_dtype();  // every activation below; `out` (the residual's increment) is F32

  Tensor q = b.empty(A, T, heads * qk);
  if (cfg_.q_lora_rank > 0) {
    Tensor qa = b.empty(A, T, cfg_.q_lora_rank);
    b.linear(xn, a.q_a, qa, mode);
    b.rmsnorm(qa, a.q_a_norm, eps, qa);
    b.linear(qa, a.q_b, q, mode);
  } else {
    b.linear(xn, a.q_proj, q, mode);
  }
  // The latent row of each token: normalised c, then the rotated shared rope key. This is what the cache
  // holds.
  Tensor kv = b.empty(A, T, lat + rope);
  b.linear(xn, a.kv_a, kv, mode);
  Tensor c = kv.slice_cols(0, lat), k_rope = kv.slice_cols(lat, rope);
  b.rmsnorm(c, a.kv_a_norm, eps, c);
  b.rope(k_rope, 1, rope, rope, positions, inv_freq_, rope_factor_);
  Tensor q_rope = q.slice_cols(nope, q.cols - nope);
  b.rope(q_rope, heads, qk, rope, positions, inv_freq_, rope_factor_);

  // Every new token of the part into the cache, then each form's attention over all its sequences.
  const LatentPool pool = cache_->layer(slot);
  b.cache_write(kv, pool, part.slots);
  Tensor o = b.empty(A, T, heads * vdim);
  const int64_t Ta = part.absorbed_rows, Te = part.expanded_rows();
  if (Ta > 0) {
    // Absorbed: kv_b is applied to q and to the output instead of to every cached token. As in
    // DeepSeek's reference, these products use the dequantised weight with unquantised activations.
    const Tensor qs = q.slice_rows(0, Ta);
    Tensor q_lat = b.empty(A, Ta, heads * lat), o_lat = b.empty(A, Ta, heads * lat);
    b.mla_absorb_q(qs, qk, a.kv_b, heads, nope, vdim, q_lat, ActMode::kF32);
    b.attention_latent(q_lat, qs.slice_cols(nope, qs.cols - nope), qk, pool, part.kv, part.row_seq, heads,
                       lat, rope, positions.slice_rows(0, Ta), softmax_scale_, o_lat);
    Tensor os = o.slice_rows(0, Ta);
    b.mla_absorb_out(o_lat, a.kv_b, heads, nope, vdim, os, ActMode::kF32);
  }
  if (Te > 0) {
    // Expanded: every expanded sequence's keys (its whole cache) through kv_b, then one varlen attention.
    const int64_t S = part.key_rows;
    Tensor rows = b.empty(A, S, lat + rope);
    b.cache_gather(pool, part.key_slots, rows);
    Tensor kvb = b.empty(A, S, heads * (nope + vdim));
    b.linear(rows.slice_cols(0, lat), a.kv_b, kvb, mode);
    Tensor k = b.empty(A, S, heads * qk), v = b.empty(A, S, heads * vdim);
    b.mla_expand_kv(kvb, rows.slice_cols(lat, rope), heads, nope, vdim, k, v);
    Tensor os = o.slice_rows(Ta, Te);
    b.attention_expanded(q.slice_rows(Ta, Te), k, v, heads, positions.slice_rows(Ta, Te), part.k_start,
                         softmax_scale_, os);
  }
  b.linear(o, a.o, out, mode);
}

void DeepseekNetwork::ffn(const ExpertWeights& w, const Tensor& x, Tensor& out) {
  Backend& b = backend_;
  const ActMode mode = opts_.act_mode;
  const int64_t inter = w.gate.n();
  const DType A = b.act_dtype();
  Tensor g = b.empty(A, x.rows, inter), u = b.empty(A, x.rows, inter);
  b.linear(x, w.gate, g, mode);
  b.linear(x, w.up, u, mode);
  b.silu_mul(g, u, g);
  b.linear(g, w.down, out, mode);
}

void DeepseekNetwork::route(const LayerWeights& L, const Tensor& xn, Tensor& ids, Tensor& weights) {
  Backend& b = backend_;
  const int64_t T = xn.rows;
  Tensor logits = b.empty(DType::kF32, T, cfg_.n_routed_experts);
  b.linear(xn, L.router, logits, ActMode::kF32);  // the router stays in fp32 (its logits too)
  ids = b.empty(DType::kI32, T, cfg_.num_experts_per_tok);
  weights = b.empty(DType::kF32, T, cfg_.num_experts_per_tok);
  b.moe_route(logits, L.router_bias, router_, ids, weights);
}

void DeepseekNetwork::mlp(const LayerWeights& L, int64_t slot, Tensor& xn, Tensor& out) {
  Backend& b = backend_;
  const ActMode mode = opts_.act_mode;
  if (!L.moe) {
    ffn(L.dense, xn, out);
    return;
  }
  const int64_t T = xn.rows;
  Tensor ids, weights;
  route(L, xn, ids, weights);
  if (opts_.moe_hook) {
    opts_.moe_hook->routed_experts(slot, L, xn, ids, weights, out, mode);
  } else {
    moert::routed_experts(b, L.routed, xn, ids, weights, out, mode);
  }
  if (L.has_shared) {
    Tensor sh = b.empty(DType::kF32, T, cfg_.hidden_size);
    ffn(L.shared, xn, sh);
    b.add(sh, out);
  }
}

void DeepseekNetwork::attention_block(const LayerWeights& L, int64_t slot, Tensor& x, Tensor& xn, Tensor& y,
                                      const BatchPart& part) {
  Backend& b = backend_;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  b.rmsnorm(x, L.input_norm, eps, xn);
  attention(L, slot, xn, y, part);
  b.add(y, x);
  b.rmsnorm(x, L.post_attention_norm, eps, xn);
}

void DeepseekNetwork::decoder_layer(const LayerWeights& L, int64_t slot, Tensor& x, const BatchPart& part) {
  Backend& b = backend_;
  // x, the residual stream, and y, each block's increment to it, stay F32; xn is an activation.
  Tensor xn = b.empty(b.act_dtype(), x.rows, x.cols), y = b.empty(DType::kF32, x.rows, x.cols);
  attention_block(L, slot, x, xn, y, part);
  mlp(L, slot, xn, y);
  b.add(y, x);
}

void DeepseekNetwork::run_layers(Tensor& x, const BatchPart& part,
                                 const std::function<void(int64_t, const Tensor&)>& on_hidden) {
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    if (on_hidden) on_hidden(i, x);
    decoder_layer(w_.layers[i], i, x, part);
  }
}

Tensor DeepseekNetwork::forward(StepBatch& batch,
                                const std::function<void(int64_t, const Tensor&)>& on_hidden,
                                std::vector<float>* final_hidden) {
  const int64_t T = batch.tokens();
  const bool two = opts_.moe_hook && opts_.moe_hook->two_microbatches();
  if (two && on_hidden)
    fail(ErrorCode::kUnsupported,
         "per-layer hidden states are not available with the two-microbatch overlap");
  if (two && T > 0 && !batch.has_halves())
    fail(ErrorCode::kInternal, "forward: the batch was built without its two microbatches");
  if (T == 0) {
    // Expert parallelism: a rank with no tokens still takes part in every MoE layer's exchange.
    if (two) {
      Tensor none;
      run_layers_two_microbatches(none, batch);
    } else if (opts_.moe_hook) {
      Tensor none;
      for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i)
        if (w_.layers[i].moe)
          opts_.moe_hook->routed_experts(i, w_.layers[i], none, none, none, none, opts_.act_mode);
    }
    return Tensor();
  }
  // A graph bucket's batch: replay its graph (captured on the bucket's second batch).
  GraphSlot* slot = nullptr;
  if (batch.fixed_layout() && !on_hidden && !final_hidden)
    for (auto& [rows, s] : graphs_)
      if (&s.layout == batch.fixed_layout()) slot = &s;
  if (slot) {
    Backend& b = backend_;
    if (slot->graph && slot->generation != b.memory_generation()) {
      // The allocator released memory the graph may point into: warm up again (so the capture finds every
      // buffer in its cache), then capture anew.
      slot->graph.reset();
      slot->logits = Tensor();
      slot->eager_runs = 0;
    }
    if (slot->graph) {
      b.replay(slot->graph);
      batch.advance();
      return slot->logits;
    }
    if (slot->eager_runs > 0) {
      const int64_t generation = b.memory_generation();
      b.begin_capture();
      try {
        Tensor logits = compute(batch, nullptr, nullptr);
        slot->graph = b.end_capture();
        slot->logits = logits;
        slot->generation = generation;
        b.replay(slot->graph);
        batch.advance();
        return logits;
      } catch (const std::exception&) {
        // A capture that failed costs the step nothing: it runs eagerly; after two failures the bucket stays
        // eager.
        b.abort_capture();
        slot->graph.reset();
        slot->logits = Tensor();
        slot->eager_runs = 0;
        ++slot->failures;
      }
    } else {
      ++slot->eager_runs;
    }
  }
  Tensor out = compute(batch, on_hidden, final_hidden);
  batch.advance();
  return out;
}

Tensor DeepseekNetwork::compute(StepBatch& batch,
                                const std::function<void(int64_t, const Tensor&)>& on_hidden,
                                std::vector<float>* final_hidden) {
  Backend& b = backend_;
  const int64_t T = batch.tokens();
  const bool two = opts_.moe_hook && opts_.moe_hook->two_microbatches();
  cache_ = batch.cache();
  Tensor x = b.empty(DType::kF32, T, cfg_.hidden_size);
  b.embedding(w_.embed, batch.whole().ids, x);
  if (two) {
    run_layers_two_microbatches(x, batch);
  } else {
    run_layers(x, batch.whole(), on_hidden);
  }
  if (final_hidden) {
    final_hidden->resize(static_cast<size_t>(T * cfg_.hidden_size));
    b.copy_to_host(x, final_hidden->data());
  }
  b.rmsnorm(x, w_.final_norm, static_cast<float>(cfg_.rms_norm_eps), x);
  if (on_hidden) on_hidden(cfg_.num_hidden_layers, x);

  // Only the rows whose logits were asked for go through lm_head, in the steps' order.
  Tensor out;
  const int64_t R = batch.logits_count();
  if (R > 0) {
    Tensor sel = b.empty(b.act_dtype(), R, cfg_.hidden_size);
    b.gather_rows(x, batch.logit_rows(), sel);
    out = b.empty(DType::kF32, R, cfg_.vocab_size);  // the logits stay F32 (sampling, the host)
    b.linear(sel, w_.lm_head, out, opts_.act_mode);
  }
  return out;
}

void DeepseekNetwork::forward(std::vector<SequenceStep>& steps, float* logits,
                              const std::function<void(int64_t, const Tensor&)>& on_hidden,
                              std::vector<float>* final_hidden) {
  StepBatch batch = make_batch(steps);
  const Tensor out = forward(batch, on_hidden, final_hidden);
  if (logits && batch.logits_wanted() > 0)
    backend_.copy_to_host(out.slice_rows(0, batch.logits_wanted()), logits);
}

void DeepseekNetwork::rebind_experts(const ExpertFilter& keep) {
  for (int64_t i = 0; i < static_cast<int64_t>(w_.layers.size()); ++i)
    rebind_layer_experts(cfg_, *store_, backend_, i, w_.layers[i], keep);
  for (size_t j = 0; j < w_.mtp.size(); ++j)
    rebind_layer_experts(cfg_, *store_, backend_, cfg_.num_hidden_layers + static_cast<int64_t>(j),
                         w_.mtp[j].layer, keep);
  opts_.bind_expert = keep;
  prepare_expert_sets();
}

void DeepseekNetwork::mtp_draft(KvSequence& kv, int64_t pos0, const float* hidden, const int32_t* next_tokens,
                                int64_t n, float* logits) {
  if (w_.mtp.empty()) fail(ErrorCode::kInvalidArgument, "this model has no MTP module loaded");
  if (pos0 < 0 || n <= 0 || pos0 + n > kv.length())
    fail(ErrorCode::kInvalidArgument,
         "mtp_draft: positions " + std::to_string(pos0) + ".." + std::to_string(pos0 + n - 1) +
             " are not in the main cache (length " + std::to_string(kv.length()) + ")");
  Tensor h = backend_.empty(DType::kF32, n, cfg_.hidden_size);
  backend_.copy_from_host(hidden, h);
  SequenceStep st;
  st.kv = &kv;
  st.tokens = next_tokens;
  st.n = n;
  st.all_logits = true;
  const Tensor out = mtp_forward({st}, {pos0}, {0}, h);
  backend_.copy_to_host(out, logits);
}

Tensor DeepseekNetwork::mtp_forward(std::vector<SequenceStep> steps, const std::vector<int64_t>& pos0,
                                    const std::vector<int64_t>& hidden_row, const Tensor& hidden,
                                    Tensor* mtp_hidden, std::vector<int64_t>* batch_rows) {
  if (w_.mtp.empty()) fail(ErrorCode::kInvalidArgument, "this model has no MTP module loaded");
  if (pos0.size() != steps.size() || hidden_row.size() != steps.size())
    fail(ErrorCode::kInternal, "mtp_forward: one pos0 and one hidden row per step");
  for (size_t i = 0; i < steps.size(); ++i) {
    const SequenceStep& st = steps[i];
    // A chained draft starts past the main cache's length, on pages the previous link reserved.
    if (!st.kv || pos0[i] < 0 || st.n <= 0 ||
        pos0[i] > static_cast<int64_t>(st.kv->pages().size()) * st.kv->page_rows())
      fail(ErrorCode::kInvalidArgument, "mtp_forward: positions " + std::to_string(pos0[i]) + ".." +
                                            std::to_string(pos0[i] + st.n - 1) +
                                            " do not start in the sequence's pages");
    if (hidden_row[i] < 0 || hidden_row[i] + st.n > hidden.rows)
      fail(ErrorCode::kInternal, "mtp_forward: hidden rows out of range");
  }
  Backend& b = backend_;
  const MtpWeights& m = w_.mtp[0];
  const int64_t H = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  // The MTP layer's own cache slot is written at the same positions as the main layers'. A batch over each
  // sequence seen at length pos0 makes the layer attend to positions 0 .. pos0 + i; the lengths come back
  // after (the main layers' tokens are what a sequence's length counts).
  std::vector<int64_t> saved;
  for (size_t i = 0; i < steps.size(); ++i) {
    KvSequence& kv = *steps[i].kv;
    saved.push_back(kv.length());
    if (pos0[i] < kv.length())
      kv.truncate(pos0[i]);
    else
      kv.advance(pos0[i] - kv.length());
  }
  struct Restore {
    std::vector<SequenceStep>& steps;
    std::vector<int64_t>& saved;
    ~Restore() {
      for (size_t i = 0; i < saved.size(); ++i) {
        KvSequence& kv = *steps[i].kv;
        if (kv.length() > saved[i])
          kv.truncate(saved[i]);
        else
          kv.advance(saved[i] - kv.length());
      }
    }
  } restore{steps, saved};
  StepBatch batch(b, cfg_, opts_.attention, steps, false);
  cache_ = batch.cache();
  const BatchPart& part = batch.whole();
  const int64_t T = batch.tokens();
  // Each row's main hidden state, in this batch's row order.
  std::vector<int32_t> src(T);
  for (size_t i = 0; i < steps.size(); ++i)
    for (int64_t j = 0; j < steps[i].n; ++j)
      src[batch.row_of(i) + j] = static_cast<int32_t>(hidden_row[i] + j);
  if (batch_rows) {
    batch_rows->clear();
    for (size_t i = 0; i < steps.size(); ++i) batch_rows->push_back(batch.row_of(i));
  }
  Tensor src_rows = b.empty(DType::kI32, T, 1);
  b.copy_from_host_i32(src.data(), src_rows);
  // h' = eh_proj([enorm(embed(t_{i+1})), hnorm(h_i)])
  Tensor cat = b.empty(b.act_dtype(), T, 2 * H);
  Tensor e = cat.slice_cols(0, H), h = cat.slice_cols(H, H);
  b.embedding(m.embed, part.ids, e);
  b.rmsnorm(e, m.enorm, eps, e);
  // hnorm reads the F32 hidden states (one rounding to the activation dtype, at its output).
  Tensor hf = b.act_dtype() == DType::kF32 ? h : b.empty(DType::kF32, T, H);
  b.gather_rows(hidden, src_rows, hf);
  b.rmsnorm(hf, m.hnorm, eps, h);
  Tensor x = b.empty(DType::kF32, T, H);
  b.linear(cat, m.eh_proj, x, opts_.act_mode);
  decoder_layer(m.layer, cfg_.num_hidden_layers, x, part);
  b.rmsnorm(x, m.head_norm, eps, x);
  if (mtp_hidden) *mtp_hidden = x;
  Tensor out;
  const int64_t R = batch.logits_count();
  if (R > 0) {
    Tensor sel = b.empty(b.act_dtype(), R, H);
    b.gather_rows(x, batch.logit_rows(), sel);
    out = b.empty(DType::kF32, R, cfg_.vocab_size);
    b.linear(sel, m.head, out, opts_.act_mode);
  }
  batch.advance();
  return out;
}

}  // namespace moert
