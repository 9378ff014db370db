#include "attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dispatch.h"

namespace moert::kernels {
namespace {

inline float dotf(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// Turns raw scores into softmax probabilities in place.
void softmax_inplace(float* p, int64_t n) {
  if (n <= 0) return;
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, p[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    p[j] = std::exp(p[j] - mx);
    sum += p[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) p[j] *= inv;
}

}  // namespace

void attention_expanded(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                        const ExpandedSeq* seqs, int64_t nseq, int64_t heads, int64_t dqk, int64_t dv,
                        const int32_t* q_pos, float scale, float* out, int64_t ldo, ThreadPool* pool) {
  MOERT_DISPATCH(attention_expanded, q, ldq, k, ldk, v, ldv, seqs, nseq, heads, dqk, dv, q_pos, scale, out,
                 ldo, pool);
  for (int64_t sq = 0; sq < nseq; ++sq) {
    const ExpandedSeq& S = seqs[sq];
    const float* ks = k + S.k0 * ldk;
    const float* vs = v + S.k0 * ldv;
    parallel_for(pool, S.qn * heads, 1, [&](int64_t b, int64_t e, int) {
      thread_local std::vector<float> p;
      p.resize(S.kn);
      for (int64_t idx = b; idx < e; ++idx) {
        const int64_t i = S.q0 + idx / heads, h = idx % heads;
        const int64_t n = std::max<int64_t>(0, std::min<int64_t>(S.kn, q_pos[i] + 1));
        const float* qi = q + i * ldq + h * dqk;
        for (int64_t j = 0; j < n; ++j) p[j] = dotf(qi, ks + j * ldk + h * dqk, dqk) * scale;
        softmax_inplace(p.data(), n);
        float* o = out + i * ldo + h * dv;
        std::fill(o, o + dv, 0.0f);
        for (int64_t j = 0; j < n; ++j) {
          const float pj = p[j];
          const float* vj = vs + j * ldv + h * dv;
          for (int64_t c = 0; c < dv; ++c) o[c] += pj * vj[c];
        }
      }
    });
  }
}

void attention_expanded(const float* q, int64_t t, int64_t ldq, const float* k, int64_t ldk, const float* v,
                        int64_t ldv, int64_t s, int64_t heads, int64_t dqk, int64_t dv, const int32_t* q_pos,
                        float scale, float* out, int64_t ldo, ThreadPool* pool) {
  const ExpandedSeq one{0, t, 0, s};
  attention_expanded(q, ldq, k, ldk, v, ldv, &one, 1, heads, dqk, dv, q_pos, scale, out, ldo, pool);
}

void attention_latent(const float* q_lat, int64_t ldql, const float* q_rope, int64_t ldqr,
                      int64_t rope_stride, int64_t t, const PagedRows* caches, const int32_t* row_cache,
                      int64_t lat, int64_t rope, int64_t heads, const int32_t* q_pos, float scale, float* out,
                      int64_t ldo, ThreadPool* pool, bool split_keys) {
  MOERT_DISPATCH(attention_latent, q_lat, ldql, q_rope, ldqr, rope_stride, t, caches, row_cache, lat, rope,
                 heads, q_pos, scale, out, ldo, pool, split_keys);
  (void)split_keys;  // the portable path never splits
  const int64_t width = lat + rope;
  parallel_for(pool, t * heads, 1, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> p;
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t i = idx / heads, h = idx % heads;
      const int64_t n = std::max<int64_t>(0, q_pos[i] + 1);
      const PagedRows& cache = caches[row_cache ? row_cache[i] : 0];
      p.resize(n);
      const float* ql = q_lat + i * ldql + h * lat;
      const float* qr = q_rope + i * ldqr + h * rope_stride;
      for (int64_t j = 0; j < n; ++j) {
        const float* row = cache.row(j, width);
        p[j] = (dotf(ql, row, lat) + dotf(qr, row + lat, rope)) * scale;
      }
      softmax_inplace(p.data(), n);
      float* o = out + i * ldo + h * lat;
      std::fill(o, o + lat, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float pj = p[j];
        const float* row = cache.row(j, width);
        for (int64_t c = 0; c < lat; ++c) o[c] += pj * row[c];
      }
    }
  });
}

}  // namespace moert::kernels
