#include "model/deepseek_model.h"

#include <algorithm>
#include <string>

#include "model/rope_table.h"
#include "util/error.h"

namespace moert {

DeepseekModel::DeepseekModel(ModelConfig cfg, std::shared_ptr<WeightStore> store, Backend& backend,
                             ModelOptions opts)
    : cfg_(std::move(cfg)), store_(std::move(store)), backend_(backend), opts_(opts) {
  w_ = bind_model_weights(cfg_, *store_, backend_, opts_.load_mtp, opts_.bind_expert);
  inv_freq_ = rope_inv_freq(cfg_);
  rope_factor_ = static_cast<float>(cfg_.rope_attention_factor());
  softmax_scale_ = static_cast<float>(cfg_.softmax_scale());
  router_.experts = cfg_.n_routed_experts;
  router_.top_k = cfg_.num_experts_per_tok;
  router_.n_group = cfg_.n_group;
  router_.topk_group = cfg_.topk_group;
  router_.sigmoid = cfg_.scoring_func == ScoringFunc::kSigmoid;
  router_.grouped = cfg_.topk_method != TopkMethod::kGreedy;
  router_.group_sum_top2 = cfg_.topk_method == TopkMethod::kNoauxTc;
  router_.routed_scale = static_cast<float>(cfg_.routed_scaling_factor);
  if (cfg_.model_type == "deepseek_v2") {
    // DeepSeek-V2: normalise only when asked (and top_k > 1), and then without the routed scale.
    router_.normalize = cfg_.norm_topk_prob && cfg_.num_experts_per_tok > 1;
    router_.scale_only_unnormalized = true;
  } else {
    router_.normalize = cfg_.norm_topk_prob;
    router_.scale_only_unnormalized = false;
  }
}

int64_t DeepseekModel::cache_layers() const {
  return cfg_.num_hidden_layers + static_cast<int64_t>(w_.mtp.size());
}

void DeepseekModel::check_tokens(const int32_t* tokens, int64_t n) const {
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab_size)
      fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(tokens[i]) + " at position " +
                                            std::to_string(i) + " is outside the vocabulary [0, " +
                                            std::to_string(cfg_.vocab_size) + ")");
}

void DeepseekModel::attention(const LayerWeights& L, int64_t slot, Tensor& xn, Tensor& out,
                              const std::vector<SeqRows>& seqs, const Tensor& positions) {
  Backend& b = backend_;
  const ActMode mode = opts_.act_mode;
  const AttentionWeights& a = L.attn;
  const int64_t T = xn.rows, heads = cfg_.num_attention_heads, nope = cfg_.qk_nope_head_dim,
                rope = cfg_.qk_rope_head_dim, vdim = cfg_.v_head_dim, lat = cfg_.kv_lora_rank,
                qk = nope + rope;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  Tensor q = b.empty(DType::kF32, T, heads * qk);
  if (cfg_.q_lora_rank > 0) {
    Tensor qa = b.empty(DType::kF32, T, cfg_.q_lora_rank);
    b.linear(xn, a.q_a, qa, mode);
    b.rmsnorm(qa, a.q_a_norm, eps, qa);
    b.linear(qa, a.q_b, q, mode);
  } else {
    b.linear(xn, a.q_proj, q, mode);
  }
  // The latent row of each token: normalised c, then the rotated shared rope key. This is what the cache
  // holds.
  Tensor kv = b.empty(DType::kF32, T, lat + rope);
  b.linear(xn, a.kv_a, kv, mode);
  Tensor c = kv.slice_cols(0, lat), k_rope = kv.slice_cols(lat, rope);
  b.rmsnorm(c, a.kv_a_norm, eps, c);
  b.rope(k_rope, 1, rope, rope, positions, inv_freq_, rope_factor_);
  Tensor q_rope = q.slice_cols(nope, q.cols - nope);
  b.rope(q_rope, heads, qk, rope, positions, inv_freq_, rope_factor_);

  Tensor o = b.empty(DType::kF32, T, heads * vdim);
  for (const SeqRows& sq : seqs) {
    const int64_t r0 = sq.row0, n = sq.n, past = sq.past, total = past + n;
    const LatentCacheView view = sq.kv->view(static_cast<int>(slot));
    b.cache_write(kv.slice_rows(r0, n), view, past);
    const Tensor pos = positions.slice_rows(r0, n), qs = q.slice_rows(r0, n);
    Tensor os = o.slice_rows(r0, n);
    if (sq.expanded) {
      Tensor rows = b.empty(DType::kF32, total, lat + rope);
      b.cache_read(view, total, rows);
      Tensor kvb = b.empty(DType::kF32, total, heads * (nope + vdim));
      b.linear(rows.slice_cols(0, lat), a.kv_b, kvb, mode);
      Tensor k = b.empty(DType::kF32, total, heads * qk), v = b.empty(DType::kF32, total, heads * vdim);
      b.mla_expand_kv(kvb, rows.slice_cols(lat, rope), heads, nope, vdim, k, v);
      b.attention_expanded(qs, k, v, heads, pos, softmax_scale_, os);
    } else {
      // Absorbed: kv_b is applied to q and to the output instead of to every cached token. As in
      // DeepSeek's reference, these products use the dequantised weight with unquantised activations.
      Tensor q_lat = b.empty(DType::kF32, n, heads * lat), o_lat = b.empty(DType::kF32, n, heads * lat);
      b.mla_absorb_q(qs, qk, a.kv_b, heads, nope, vdim, q_lat, ActMode::kF32);
      b.attention_latent(q_lat, qs.slice_cols(nope, qs.cols - nope), qk, view, heads, lat, rope, pos,
                         softmax_scale_, o_lat);
      b.mla_absorb_out(o_lat, a.kv_b, heads, nope, vdim, os, ActMode::kF32);
    }
  }
  b.linear(o, a.o, out, mode);
}

void DeepseekModel::ffn(const ExpertWeights& w, const Tensor& x, Tensor& out) {
  Backend& b = backend_;
  const ActMode mode = opts_.act_mode;
  const int64_t inter = w.gate.n();
  Tensor g = b.empty(DType::kF32, x.rows, inter), u = b.empty(DType::kF32, x.rows, inter);
  b.linear(x, w.gate, g, mode);
  b.linear(x, w.up, u, mode);
  b.silu_mul(g, u, g);
  b.linear(g, w.down, out, mode);
}

void DeepseekModel::route(const LayerWeights& L, const Tensor& xn, Tensor& ids, Tensor& weights) {
  Backend& b = backend_;
  const int64_t T = xn.rows;
  Tensor logits = b.empty(DType::kF32, T, cfg_.n_routed_experts);
  b.linear(xn, L.router, logits, ActMode::kF32);  // the router stays in fp32
  ids = b.empty(DType::kI32, T, cfg_.num_experts_per_tok);
  weights = b.empty(DType::kF32, T, cfg_.num_experts_per_tok);
  b.moe_route(logits, L.router_bias, router_, ids, weights);
}

void DeepseekModel::mlp(const LayerWeights& L, int64_t slot, Tensor& xn, Tensor& out) {
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
    std::vector<const ExpertWeights*> experts(L.experts.size());
    for (size_t e = 0; e < experts.size(); ++e) experts[e] = &L.experts[e];
    b.moe_experts(xn, ids, weights, experts, out, mode);
  }
  if (L.has_shared) {
    Tensor sh = b.empty(DType::kF32, T, cfg_.hidden_size);
    ffn(L.shared, xn, sh);
    b.add(sh, out);
  }
}

void DeepseekModel::attention_block(const LayerWeights& L, int64_t slot, Tensor& x, Tensor& xn, Tensor& y,
                                    const std::vector<SeqRows>& seqs, const Tensor& positions) {
  Backend& b = backend_;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  b.rmsnorm(x, L.input_norm, eps, xn);
  attention(L, slot, xn, y, seqs, positions);
  b.add(y, x);
  b.rmsnorm(x, L.post_attention_norm, eps, xn);
}

void DeepseekModel::decoder_layer(const LayerWeights& L, int64_t slot, Tensor& x,
                                  const std::vector<SeqRows>& seqs, const Tensor& positions) {
  Backend& b = backend_;
  Tensor xn = b.empty(DType::kF32, x.rows, x.cols), y = b.empty(DType::kF32, x.rows, x.cols);
  attention_block(L, slot, x, xn, y, seqs, positions);
  mlp(L, slot, xn, y);
  b.add(y, x);
}

void DeepseekModel::run_layers(Tensor& x, const std::vector<SeqRows>& seqs, const Tensor& positions,
                               const std::function<void(int64_t, const Tensor&)>& on_hidden) {
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    if (on_hidden) on_hidden(i, x);
    decoder_layer(w_.layers[i], i, x, seqs, positions);
  }
}

void DeepseekModel::forward(std::vector<SequenceStep>& steps, float* logits,
                            const std::function<void(int64_t, const Tensor&)>& on_hidden,
                            std::vector<float>* final_hidden) {
  Backend& b = backend_;
  int64_t T = 0, out_rows = 0;
  std::vector<int64_t> row0;
  for (const SequenceStep& st : steps) {
    if (!st.kv || st.n <= 0 || !st.tokens)
      fail(ErrorCode::kInvalidArgument, "forward: a step has no tokens or no cache");
    check_tokens(st.tokens, st.n);
    if (st.kv->length() + st.n > cfg_.max_position_embeddings)
      fail(ErrorCode::kInvalidArgument, "sequence of " + std::to_string(st.kv->length() + st.n) +
                                            " tokens exceeds the model's context length " +
                                            std::to_string(cfg_.max_position_embeddings));
    row0.push_back(T);
    T += st.n;
    out_rows += st.all_logits ? st.n : 1;
  }
  const bool two = opts_.moe_hook && opts_.moe_hook->two_microbatches();
  if (two && on_hidden)
    fail(ErrorCode::kUnsupported,
         "per-layer hidden states are not available with the two-microbatch overlap");
  if (T == 0) {
    // Expert parallelism: a rank with no tokens still takes part in every MoE layer's exchange.
    if (two) {
      Tensor none;
      run_layers_two_microbatches(none, {}, none);
    } else if (opts_.moe_hook) {
      Tensor none;
      for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i)
        if (w_.layers[i].moe)
          opts_.moe_hook->routed_experts(i, w_.layers[i], none, none, none, none, opts_.act_mode);
    }
    return;
  }
  for (SequenceStep& st : steps) st.kv->reserve(st.n);  // may throw kOutOfMemory; nothing written yet

  std::vector<int32_t> ids_h(T), pos_h(T);
  for (size_t s = 0; s < steps.size(); ++s)
    for (int64_t j = 0; j < steps[s].n; ++j) {
      ids_h[row0[s] + j] = steps[s].tokens[j];
      pos_h[row0[s] + j] = static_cast<int32_t>(steps[s].kv->length() + j);
    }
  Tensor ids = b.empty(DType::kI32, T, 1), positions = b.empty(DType::kI32, T, 1);
  b.copy_from_host_i32(ids_h.data(), ids);
  b.copy_from_host_i32(pos_h.data(), positions);

  std::vector<SeqRows> seqs;
  for (size_t s = 0; s < steps.size(); ++s) {
    const bool expanded = opts_.attention == AttentionForm::kExpanded ||
                          (opts_.attention == AttentionForm::kAuto && steps[s].n > 1);
    seqs.push_back({steps[s].kv, row0[s], steps[s].kv->length(), steps[s].n, expanded});
  }
  Tensor x = b.empty(DType::kF32, T, cfg_.hidden_size);
  b.embedding(w_.embed, ids, x);
  if (two) {
    run_layers_two_microbatches(x, seqs, positions);
  } else {
    run_layers(x, seqs, positions, on_hidden);
  }
  if (final_hidden) {
    final_hidden->resize(static_cast<size_t>(T * cfg_.hidden_size));
    b.copy_to_host(x, final_hidden->data());
  }
  b.rmsnorm(x, w_.final_norm, static_cast<float>(cfg_.rms_norm_eps), x);
  if (on_hidden) on_hidden(cfg_.num_hidden_layers, x);

  // Only the rows whose logits were asked for go through lm_head.
  Tensor sel = x;
  if (out_rows != T) {
    sel = b.empty(DType::kF32, out_rows, cfg_.hidden_size);
    int64_t r = 0;
    for (size_t s = 0; s < steps.size(); ++s) {
      if (steps[s].all_logits) {
        for (int64_t j = 0; j < steps[s].n; ++j, ++r) copy_row(x, row0[s] + j, sel, r);
      } else {
        copy_row(x, row0[s] + steps[s].n - 1, sel, r++);
      }
    }
  }
  Tensor out = b.empty(DType::kF32, out_rows, cfg_.vocab_size);
  b.linear(sel, w_.lm_head, out, opts_.act_mode);
  if (logits) b.copy_to_host(out, logits);
  for (SequenceStep& st : steps) st.kv->advance(st.n);
}

void DeepseekModel::rebind_experts(const ExpertFilter& keep) {
  for (int64_t i = 0; i < static_cast<int64_t>(w_.layers.size()); ++i)
    rebind_layer_experts(cfg_, *store_, backend_, i, w_.layers[i], keep);
  for (size_t j = 0; j < w_.mtp.size(); ++j)
    rebind_layer_experts(cfg_, *store_, backend_, cfg_.num_hidden_layers + static_cast<int64_t>(j),
                         w_.mtp[j].layer, keep);
  opts_.bind_expert = keep;
}

void DeepseekModel::copy_row(const Tensor& src, int64_t r, Tensor& dst, int64_t dr) {
  Tensor s = src.slice_rows(r, 1), d = dst.slice_rows(dr, 1);
  backend_.fill_zero(d);
  backend_.add(s, d);
}

void DeepseekModel::mtp_draft(KvSequence& kv, int64_t pos0, const float* hidden, const int32_t* next_tokens,
                              int64_t n, float* logits) {
  if (w_.mtp.empty()) fail(ErrorCode::kInvalidArgument, "this model has no MTP module loaded");
  check_tokens(next_tokens, n);
  if (pos0 < 0 || pos0 + n > kv.length())
    fail(ErrorCode::kInvalidArgument,
         "mtp_draft: positions " + std::to_string(pos0) + ".." + std::to_string(pos0 + n - 1) +
             " are not in the main cache (length " + std::to_string(kv.length()) + ")");
  Backend& b = backend_;
  const MtpWeights& m = w_.mtp[0];
  const int64_t H = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  std::vector<int32_t> pos_h(n);
  for (int64_t i = 0; i < n; ++i) pos_h[i] = static_cast<int32_t>(pos0 + i);
  Tensor ids = b.empty(DType::kI32, n, 1), positions = b.empty(DType::kI32, n, 1);
  b.copy_from_host_i32(next_tokens, ids);
  b.copy_from_host_i32(pos_h.data(), positions);
  // h' = eh_proj([enorm(embed(t_{i+1})), hnorm(h_i)])
  Tensor cat = b.empty(DType::kF32, n, 2 * H);
  Tensor e = cat.slice_cols(0, H), h = cat.slice_cols(H, H);
  b.embedding(m.embed, ids, e);
  b.rmsnorm(e, m.enorm, eps, e);
  b.copy_from_host(hidden, h);
  b.rmsnorm(h, m.hnorm, eps, h);
  Tensor x = b.empty(DType::kF32, n, H);
  b.linear(cat, m.eh_proj, x, opts_.act_mode);
  // The MTP layer's own cache slot is written at the same positions as the main layers'. A view of the
  // sequence whose length is pos0 makes the layer attend to positions 0 .. pos0 + i.
  KvSequence* kvp = &kv;
  const int64_t saved = kv.length();
  kv.truncate(pos0);
  const bool expanded =
      opts_.attention == AttentionForm::kExpanded || (opts_.attention == AttentionForm::kAuto && n > 1);
  const std::vector<SeqRows> seqs{{kvp, 0, pos0, n, expanded}};
  try {
    decoder_layer(m.layer, cfg_.num_hidden_layers, x, seqs, positions);
  } catch (...) {
    kv.advance(saved - kv.length());
    throw;
  }
  kv.advance(saved - kv.length());
  b.rmsnorm(x, m.head_norm, eps, x);
  Tensor out = b.empty(DType::kF32, n, cfg_.vocab_size);
  b.linear(x, m.head, out, opts_.act_mode);
  b.copy_to_host(out, logits);
}

}  // namespace moert
