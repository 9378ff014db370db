// Sampling on the device, one block per logits row, after the CPU's sample_token
// (runtime/backend/sampling.cpp) but in float where the CPU uses double, and keeping every token tied at a
// top-k/top-p threshold (the CPU keeps exactly k, lower ids first): greedy rows match it except at near-ties.
// Steps: penalties on the row's listed tokens, then greedy (argmax, lowest id on ties), or softmax at the
// temperature with top-k, top-p and min-p applied as probability thresholds (each found by bisection over
// the float bits: the largest threshold that keeps enough), and the inverse CDF in id order at the row's
// uniform draw. Only the ids leave the device. The penalised logits go to a scratch row.
#include "common.cuh"

namespace moert::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kParamWords = 10;  // kSampleParamWords (runtime/backend/backend.h): one row's parameters

__device__ float block_sum(float v, float* sh) {
  v = warp_sum(v);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  float r = 0.0f;
  for (int k = 0; k < kThreads / 32; ++k) r += sh[k];
  return r;
}

__device__ float block_max(float v, float* sh) {
  v = warp_max(v);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  float r = -INFINITY;
  for (int k = 0; k < kThreads / 32; ++k) r = fmaxf(r, sh[k]);
  return r;
}

// Argmax, lowest id on ties.
__device__ int block_argmax(float v, int i, float* shf, int* shi) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
  }
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  __syncthreads();
  if (l == 0) shf[w] = v, shi[w] = i;
  __syncthreads();
  float bv = shf[0];
  int bi = shi[0];
  for (int k = 1; k < kThreads / 32; ++k)
    if (shf[k] > bv || (shf[k] == bv && shi[k] < bi)) bv = shf[k], bi = shi[k];
  return bi;
}

// The largest threshold t (over non-negative floats) with keep(t) true, keep monotone decreasing in t.
template <class F>
__device__ float bisect(F keep) {
  uint32_t lo = 0, hi = 0x7f800000u;  // keep(0) holds; +inf does not
  while (lo + 1 < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (keep(__uint_as_float(mid)))
      lo = mid;
    else
      hi = mid;
  }
  return __uint_as_float(lo);
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* logits, int64_t ld, int64_t V, const int32_t* params, const int32_t* tokens,
                  float* scratch, int32_t* ids) {
  __shared__ float shf[kThreads / 32];
  __shared__ int shi[kThreads / 32];
  __shared__ float chunk_sum[kThreads];
  const int64_t row = blockIdx.x;
  const int32_t* pr = params + row * kParamWords;
  const float temp = __int_as_float(pr[0]), top_p = __int_as_float(pr[2]), min_p = __int_as_float(pr[3]),
              rep = __int_as_float(pr[4]), presence = __int_as_float(pr[5]), u = __int_as_float(pr[6]);
  const int top_k = pr[1], off = pr[7], count = pr[8];
  const float frequency = __int_as_float(pr[9]);
  const float* l = logits + row * ld;
  float* p = scratch + row * V;
  int bad = 0;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) {
    const float v = l[j];
    bad |= !isfinite(v);
    p[j] = v;
  }
  bad = __syncthreads_or(bad);
  if (bad) {
    if (threadIdx.x == 0) ids[row] = -1;
    return;
  }
  // Penalties: each listed token once (repetition: seen anywhere; presence and frequency: in the output).
  for (int k = threadIdx.x; k < count; k += kThreads) {
    const int32_t t = tokens[2 * (off + k)], f = tokens[2 * (off + k) + 1];
    if (t < 0 || t >= V) continue;
    float v = p[t];
    if (rep != 1.0f) v = v > 0.0f ? v / rep : v * rep;
    if (f & 2) v -= presence + frequency * static_cast<float>(f >> 2);
    p[t] = v;
  }
  __syncthreads();
  if (!(temp > 0.0f)) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int64_t j = threadIdx.x; j < V; j += kThreads)
      if (p[j] > bv) bv = p[j], bi = static_cast<int>(j);
    const int best = block_argmax(bv, bi, shf, shi);
    if (threadIdx.x == 0) ids[row] = best;
    return;
  }
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) mx = fmaxf(mx, p[j]);
  mx = block_max(mx, shf);
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += kThreads) s += (p[j] = expf((p[j] - mx) / temp));
  const float total = block_sum(s, shf);
  for (int64_t j = threadIdx.x; j < V; j += kThreads) p[j] /= total;
  __syncthreads();
  auto count_ge = [&](float t) {
    float c = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += kThreads) c += p[j] >= t ? 1.0f : 0.0f;
    return block_sum(c, shf);
  };
  auto mass_ge = [&](float t) {
    float c = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += kThreads) c += p[j] >= t ? p[j] : 0.0f;
    return block_sum(c, shf);
  };
  float thr = 0.0f;
  if (top_k > 0 && top_k < V) thr = bisect([&](float t) { return count_ge(t) >= static_cast<float>(top_k); });
  if (top_p < 1.0f) {
    const float kept = mass_ge(thr);
    thr = fmaxf(thr, bisect([&](float t) { return t <= thr || mass_ge(t) >= top_p * kept; }));
  }
  if (min_p > 0.0f) {
    float pm = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += kThreads) pm = fmaxf(pm, p[j]);
    thr = fmaxf(thr, min_p * block_max(pm, shf));
  }
  // Inverse CDF in id order over the kept probabilities: each thread a contiguous chunk of ids.
  const int64_t per = (V + kThreads - 1) / kThreads, j0 = threadIdx.x * per, j1 = min(V, j0 + per);
  float cs = 0.0f;
  for (int64_t j = j0; j < j1; ++j) cs += p[j] >= thr ? p[j] : 0.0f;
  chunk_sum[threadIdx.x] = cs;
  __syncthreads();
  if (threadIdx.x == 0) {
    float kept = 0.0f;
    int last_chunk = -1;
    for (int k = 0; k < kThreads; ++k)
      if (chunk_sum[k] > 0.0f) kept += chunk_sum[k], last_chunk = k;
    const float target = u * kept;
    float cum = 0.0f;
    int chosen = -1;
    for (int k = 0; k <= last_chunk && chosen < 0; ++k) {
      if (chunk_sum[k] <= 0.0f) continue;
      if (cum + chunk_sum[k] <= target && k != last_chunk) {
        cum += chunk_sum[k];
        continue;
      }
      for (int64_t j = k * per; j < min(V, (k + 1) * per); ++j)
        if (p[j] >= thr && p[j] > 0.0f) {
          cum += p[j];
          if (target < cum) {
            chosen = static_cast<int>(j);
            break;
          }
        }
    }
    if (chosen < 0 && last_chunk >= 0)  // rounding left the draw past the end: the last kept id
      for (int64_t j = min(V, (last_chunk + 1) * per) - 1; j >= last_chunk * per && chosen < 0; --j)
        if (p[j] >= thr && p[j] > 0.0f) chosen = static_cast<int>(j);
    ids[row] = chosen >= 0 ? chosen : 0;
  }
}

}  // namespace

cudaError_t sample(const float* logits, int64_t ld, int64_t rows, int64_t vocab, const int32_t* params,
                   const int32_t* tokens, float* scratch, int32_t* ids, cudaStream_t s) {
  if (rows <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  sample_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(logits, ld, vocab, params, tokens, scratch,
                                                                 ids);
  return launch_status();
}

}  // namespace moert::cuda
