// Causal attention for MLA in its two forms. Softmax in fp32 with the row maximum subtracted.
#pragma once
#include <cstdint>

#include "thread_pool.h"

namespace moert::kernels {

// Expanded form (prefill), over several sequences at once (as FlashAttention's varlen form): sequence s's
// query rows [q0, q0 + qn) attend its key rows [k0, k0 + kn) of k and v, key j sitting at position j; per
// head, out = softmax(q k^T * scale) v over the keys 0..q_pos[i] (inclusive, at most kn).
// q: [t, heads, dqk] (row stride ldq, head stride dqk); k: [s, heads, dqk] (ldk); v: [s, heads, dv] (ldv);
// out: [t, heads, dv] (ldo). A row's result does not depend on the other sequences.
struct ExpandedSeq {
  int64_t q0 = 0, qn = 0, k0 = 0, kn = 0;
};
void attention_expanded(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                        const ExpandedSeq* seqs, int64_t nseq, int64_t heads, int64_t dqk, int64_t dv,
                        const int32_t* q_pos, float scale, float* out, int64_t ldo, ThreadPool* pool);
// One sequence: t queries over s keys.
void attention_expanded(const float* q, int64_t t, int64_t ldq, const float* k, int64_t ldk, const float* v,
                        int64_t ldv, int64_t s, int64_t heads, int64_t dqk, int64_t dv, const int32_t* q_pos,
                        float scale, float* out, int64_t ldo, ThreadPool* pool);

// A paged latent cache as the kernels see it: the row of token j is
// base + page_table[j / page_rows] * page_stride + (j % page_rows) * (lat + rope), lat values then rope.
struct PagedRows {
  const float* base = nullptr;
  const int32_t* page_table = nullptr;
  int64_t page_rows = 0, page_stride = 0;
  const float* row(int64_t j, int64_t width) const {
    return base + page_table[j / page_rows] * page_stride + (j % page_rows) * width;
  }
};

// Absorbed form (decode over the latent cache): scores = q_lat . c + q_rope . k_rope; out = softmax . c.
// Query row i reads the cache caches[row_cache[i]] (caches[0] when row_cache is null): the rows of a
// batch's sequences, each with its own page table, in one call (threads over rows, head groups and, for a
// long context, key ranges).
// split_keys: with fewer (token, head group) tasks than threads, a long context's keys may be split over
// threads and the partial softmaxes merged (faster decode; the bits then depend on the batch size).
// q_lat: [t, heads, lat] (ldql); head h's rope query at q_rope + i * ldqr + h * rope_stride; out: [t, heads,
// lat] (ldo).
void attention_latent(const float* q_lat, int64_t ldql, const float* q_rope, int64_t ldqr,
                      int64_t rope_stride, int64_t t, const PagedRows* caches, const int32_t* row_cache,
                      int64_t lat, int64_t rope, int64_t heads, const int32_t* q_pos, float scale, float* out,
                      int64_t ldo, ThreadPool* pool, bool split_keys = true);

}  // namespace moert::kernels
