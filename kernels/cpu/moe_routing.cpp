#include "moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace moert::kernels {
namespace {

// Indices of the k largest values, largest first; ties go to the lower index.
void top_indices(const float* v, int64_t n, int64_t k, int64_t* out) {
  thread_local std::vector<int64_t> idx;
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t a, int64_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  std::copy(idx.begin(), idx.begin() + k, out);
}

}  // namespace

void route_topk(const float* logits, int64_t tokens, const RoutingParams& p, const float* bias, int32_t* ids,
                float* weights) {
  const int64_t E = p.experts, per_group = E / p.n_group;
  std::vector<float> scores(E), choice(E), group_scores(p.n_group);
  std::vector<int64_t> sel(std::max(p.top_k, p.n_group)), gsel(p.n_group), two(2);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits + t * E;
    if (p.sigmoid) {
      for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-l[e]));
    } else {
      float mx = *std::max_element(l, l + E), sum = 0.0f;
      for (int64_t e = 0; e < E; ++e) sum += (scores[e] = std::exp(l[e] - mx));
      for (int64_t e = 0; e < E; ++e) scores[e] /= sum;
    }
    for (int64_t e = 0; e < E; ++e) choice[e] = scores[e] + (bias ? bias[e] : 0.0f);
    if (p.grouped && p.n_group > 1) {
      for (int64_t g = 0; g < p.n_group; ++g) {
        const float* c = choice.data() + g * per_group;
        if (p.group_sum_top2) {
          top_indices(c, per_group, 2, two.data());
          group_scores[g] = c[two[0]] + c[two[1]];
        } else {
          group_scores[g] = *std::max_element(c, c + per_group);
        }
      }
      top_indices(group_scores.data(), p.n_group, p.topk_group, gsel.data());
      std::vector<bool> keep(p.n_group, false);
      for (int64_t i = 0; i < p.topk_group; ++i) keep[gsel[i]] = true;
      // Experts of dropped groups score 0.0, not -inf, as the reference implementations do.
      for (int64_t e = 0; e < E; ++e)
        if (!keep[e / per_group]) choice[e] = 0.0f;
    }
    top_indices(choice.data(), E, p.top_k, sel.data());
    float sum = 0.0f;
    for (int64_t i = 0; i < p.top_k; ++i) {
      ids[t * p.top_k + i] = static_cast<int32_t>(sel[i]);
      weights[t * p.top_k + i] = scores[sel[i]];
      sum += scores[sel[i]];
    }
    for (int64_t i = 0; i < p.top_k; ++i) {
      float& w = weights[t * p.top_k + i];
      if (p.normalize) w /= (sum + 1e-20f);
      if (!p.normalize || !p.scale_only_unnormalized) w *= p.routed_scale;
    }
  }
}

}  // namespace moert::kernels
