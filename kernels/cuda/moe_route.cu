// MoE router, one warp per token (the token's scores in shared memory, each selection a warp-wide argmax),
// written as kernels/cpu/moe_routing.cpp is (same selection order: largest first, ties to the lower index;
// dropped groups' experts score 0.0). Not bit-exact with it: CUDA's expf and the warp's softmax sum differ
// in the last bits, which can flip a selection only at a near-tie.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kMaxGroups = 64, kWarps = 4;

struct WarpScratch {
  float scores[kMaxRouteExperts], choice[kMaxRouteExperts], group_scores[kMaxGroups];
  unsigned char taken[kMaxRouteExperts];
  int32_t sel[kMaxRouteExperts];
};

// The larger of (v, i) and (w, j), ties to the lower index; i < 0 is "none".
__device__ inline void better(float& v, int& i, float w, int j) {
  if (j >= 0 && (i < 0 || w > v || (w == v && j < i))) {
    v = w;
    i = j;
  }
}

// Indices of the k largest of v[0..n) (not yet taken), largest first, ties to the lower index, into out.
__device__ void warp_top(const float* v, int n, int k, int32_t* out, unsigned char* taken, int lane) {
  for (int e = lane; e < n; e += 32) taken[e] = 0;
  __syncwarp();
  for (int r = 0; r < k; ++r) {
    float bv = 0.0f;
    int bi = -1;
    for (int e = lane; e < n; e += 32)
      if (!taken[e]) better(bv, bi, v[e], e);
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      better(bv, bi, ov, oi);
    }
    if (lane == 0) {
      out[r] = bi;
      taken[bi] = 1;
    }
    __syncwarp();
  }
}

__global__ void __launch_bounds__(kWarps * 32)
    route_kernel(const float* logits, int64_t tokens, RoutingParams p, const float* bias, int32_t* ids,
                 int64_t ldi, float* weights, int64_t ldw) {
  __shared__ WarpScratch scratch[kWarps];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (t >= tokens) return;  // whole warps leave together
  WarpScratch& w = scratch[warp];
  const int E = static_cast<int>(p.experts), G = static_cast<int>(p.n_group), per_group = E / G;
  const float* l = logits + t * E;
  if (p.sigmoid) {
    for (int e = lane; e < E; e += 32) w.scores[e] = 1.0f / (1.0f + expf(-l[e]));
  } else {
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, l[e]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int e = lane; e < E; e += 32) sum += (w.scores[e] = expf(l[e] - mx));
    sum = warp_sum(sum);
    for (int e = lane; e < E; e += 32) w.scores[e] /= sum;
  }
  __syncwarp();
  for (int e = lane; e < E; e += 32) w.choice[e] = w.scores[e] + (bias ? bias[e] : 0.0f);
  __syncwarp();
  if (p.grouped && G > 1) {
    // Each lane scores its groups serially (the group's top two, or its best).
    for (int g = lane; g < G; g += 32) {
      const float* c = w.choice + g * per_group;
      float b1 = 0.0f, b2 = 0.0f;
      int i1 = -1, i2 = -1;
      for (int e = 0; e < per_group; ++e) better(b1, i1, c[e], e);
      if (p.group_sum_top2) {
        for (int e = 0; e < per_group; ++e)
          if (e != i1) better(b2, i2, c[e], e);
        w.group_scores[g] = b1 + b2;
      } else {
        w.group_scores[g] = b1;
      }
    }
    __syncwarp();
    warp_top(w.group_scores, G, static_cast<int>(p.topk_group), w.sel, w.taken, lane);
    // taken[g] now marks the kept groups; experts of the others score 0.0.
    for (int e = lane; e < E; e += 32)
      if (!w.taken[e / per_group]) w.choice[e] = 0.0f;
    __syncwarp();
  }
  warp_top(w.choice, E, static_cast<int>(p.top_k), w.sel, w.taken, lane);
  if (lane == 0) {
    float sum = 0.0f;
    for (int64_t i = 0; i < p.top_k; ++i) sum += w.scores[w.sel[i]];
    for (int64_t i = 0; i < p.top_k; ++i) {
      float wt = w.scores[w.sel[i]];
      if (p.normalize) wt /= (sum + 1e-20f);
      if (!p.normalize || !p.scale_only_unnormalized) wt *= p.routed_scale;
      ids[t * ldi + i] = w.sel[i];
      weights[t * ldw + i] = wt;
    }
  }
}

}  // namespace

cudaError_t moe_route(const float* logits, int64_t tokens, const RoutingParams& p, const float* bias,
                      int32_t* ids, int64_t ldi, float* weights, int64_t ldw, cudaStream_t s) {
  if (tokens <= 0) return cudaSuccess;
  if (p.experts <= 0 || p.experts > kMaxRouteExperts || p.n_group <= 0 || p.n_group > kMaxGroups ||
      p.top_k > p.experts || p.topk_group > p.n_group || p.experts % p.n_group != 0)
    return cudaErrorInvalidValue;
  route_kernel<<<blocks_for(tokens, kWarps), kWarps * 32, 0, s>>>(logits, tokens, p, bias, ids, ldi, weights,
                                                                  ldw);
  return launch_status();
}

}  // namespace moert::cuda
