// MoE router, one thread per token, written as kernels/cpu/moe_routing.cpp is (same selection order:
// largest first, ties to the lower index; dropped groups' experts score 0.0).
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kMaxGroups = 64;

// Indices of the k largest of v[0..n) not yet taken, largest first, ties to the lower index.
__device__ void top_indices(const float* v, int64_t n, int64_t k, int32_t* out, bool* taken) {
  for (int64_t e = 0; e < n; ++e) taken[e] = false;
  for (int64_t i = 0; i < k; ++i) {
    int64_t best = -1;
    for (int64_t e = 0; e < n; ++e)
      if (!taken[e] && (best < 0 || v[e] > v[best])) best = e;
    out[i] = static_cast<int32_t>(best);
    taken[best] = true;
  }
}

__global__ void route_kernel(const float* logits, int64_t tokens, RouteParams p, int32_t* ids, int64_t ldi,
                             float* weights, int64_t ldw) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  float scores[kMaxRouteExperts], choice[kMaxRouteExperts], group_scores[kMaxGroups];
  bool taken[kMaxRouteExperts];
  int32_t sel[kMaxRouteExperts], two[2];
  const int64_t E = p.experts, per_group = E / p.n_group;
  const float* l = logits + t * E;
  if (p.sigmoid) {
    for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + expf(-l[e]));
  } else {
    float mx = l[0], sum = 0.0f;
    for (int64_t e = 1; e < E; ++e) mx = fmaxf(mx, l[e]);
    for (int64_t e = 0; e < E; ++e) sum += (scores[e] = expf(l[e] - mx));
    for (int64_t e = 0; e < E; ++e) scores[e] /= sum;
  }
  for (int64_t e = 0; e < E; ++e) choice[e] = scores[e] + (p.bias ? p.bias[e] : 0.0f);
  if (p.grouped && p.n_group > 1) {
    for (int64_t g = 0; g < p.n_group; ++g) {
      const float* c = choice + g * per_group;
      if (p.group_sum_top2) {
        top_indices(c, per_group, 2, two, taken);
        group_scores[g] = c[two[0]] + c[two[1]];
      } else {
        float mx = c[0];
        for (int64_t e = 1; e < per_group; ++e) mx = fmaxf(mx, c[e]);
        group_scores[g] = mx;
      }
    }
    top_indices(group_scores, p.n_group, p.topk_group, sel, taken);
    bool keep[kMaxGroups];
    for (int64_t g = 0; g < p.n_group; ++g) keep[g] = false;
    for (int64_t i = 0; i < p.topk_group; ++i) keep[sel[i]] = true;
    for (int64_t e = 0; e < E; ++e)
      if (!keep[e / per_group]) choice[e] = 0.0f;
  }
  top_indices(choice, E, p.top_k, sel, taken);
  float sum = 0.0f;
  for (int64_t i = 0; i < p.top_k; ++i) sum += scores[sel[i]];
  for (int64_t i = 0; i < p.top_k; ++i) {
    float w = scores[sel[i]];
    if (p.normalize) w /= (sum + 1e-20f);
    if (!p.normalize || !p.scale_only_unnormalized) w *= p.routed_scale;
    ids[t * ldi + i] = sel[i];
    weights[t * ldw + i] = w;
  }
}

}  // namespace

cudaError_t moe_route(const float* logits, int64_t tokens, const RouteParams& p, int32_t* ids, int64_t ldi,
                      float* weights, int64_t ldw, cudaStream_t s) {
  if (tokens <= 0) return cudaSuccess;
  if (p.experts <= 0 || p.experts > kMaxRouteExperts || p.n_group <= 0 || p.n_group > kMaxGroups ||
      p.top_k > p.experts || p.topk_group > p.n_group || p.experts % p.n_group != 0)
    return cudaErrorInvalidValue;
  route_kernel<<<blocks_for(tokens, 64), 64, 0, s>>>(logits, tokens, p, ids, ldi, weights, ldw);
  return launch_status();
}

}  // namespace moert::cuda
