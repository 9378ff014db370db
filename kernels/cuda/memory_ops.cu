// Row gathers/dequantisation, MLA k/v expansion and the paged latent cache copies.
#include "common.cuh"

namespace moert::cuda {
namespace {

__global__ void dequant_rows_kernel(DevWeight w, const int32_t* ids, int64_t rows, int64_t col0, int64_t cols,
                                    float* out, int64_t ldo) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t src = ids ? ids[r] : r;
    for (int64_t c = blockIdx.x * blockDim.x + threadIdx.x; c < cols;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      float v;
      if (src < 0 || src >= w.n) {
        v = __int_as_float(0x7fc00000);
      } else {
        v = load_any(w.data, w.type, src * w.ld + col0 + c);
        if (w.type == DType::kF8E4M3) v *= w.scale[((w.row0 + src) >> 7) * w.scale_ld + ((col0 + c) >> 7)];
      }
      out[r * ldo + c] = v;
    }
  }
}

__global__ void expand_kv_kernel(int64_t s_rows, const float* kvb, int64_t ldkvb, const float* k_rope,
                                 int64_t ldkr, int64_t heads, int64_t nope, int64_t rope, int64_t vdim,
                                 float* k, int64_t ldk, float* v, int64_t ldv) {
  const int64_t kw = heads * (nope + rope), vw = heads * vdim;
  for (int64_t j = blockIdx.y; j < s_rows; j += gridDim.y)
    for (int64_t c = blockIdx.x * blockDim.x + threadIdx.x; c < kw + vw;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      if (c < kw) {
        const int64_t h = c / (nope + rope), i = c % (nope + rope);
        k[j * ldk + c] = i < nope ? kvb[j * ldkvb + h * (nope + vdim) + i] : k_rope[j * ldkr + (i - nope)];
      } else {
        const int64_t cv = c - kw, h = cv / vdim, i = cv % vdim;
        v[j * ldv + cv] = kvb[j * ldkvb + h * (nope + vdim) + nope + i];
      }
    }
}

// The element offset of a slot's row (slot = page * page_rows + row within the page).
__device__ inline int64_t slot_offset(const DevPool& c, int32_t slot) {
  return static_cast<int64_t>(slot / c.page_rows) * c.page_stride + (slot % c.page_rows) * c.width;
}

__global__ void cache_write_kernel(int64_t n, const float* rows, int64_t ldr, DevPool c,
                                   const int32_t* slots) {
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const int64_t at = slot_offset(c, slots[i]);
    for (int64_t x = threadIdx.x; x < c.width; x += blockDim.x) {
      const float v = rows[i * ldr + x];
      if (c.bf16)
        static_cast<uint16_t*>(c.base)[at + x] = f32_to_bf16(v);
      else
        static_cast<float*>(c.base)[at + x] = v;
    }
  }
}

__global__ void cache_gather_kernel(int64_t n, DevPool c, const int32_t* slots, float* out, int64_t ldo) {
  for (int64_t j = blockIdx.y; j < n; j += gridDim.y) {
    const int64_t at = slot_offset(c, slots[j]);
    for (int64_t x = threadIdx.x; x < c.width; x += blockDim.x)
      out[j * ldo + x] = c.bf16 ? bf16_to_f32(static_cast<const uint16_t*>(c.base)[at + x])
                                : static_cast<const float*>(c.base)[at + x];
  }
}

}  // namespace

cudaError_t dequant_rows(const DevWeight& w, const int32_t* ids, int64_t rows, int64_t col0, int64_t cols,
                         float* out, int64_t ldo, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks_for(cols, 256), 64)), ydim(rows));
  dequant_rows_kernel<<<grid, 256, 0, s>>>(w, ids, rows, col0, cols, out, ldo);
  return launch_status();
}

cudaError_t mla_expand_kv(const float* kvb, int64_t ldkvb, const float* k_rope, int64_t ldkr, int64_t s_rows,
                          int64_t heads, int64_t nope, int64_t rope, int64_t vdim, float* k, int64_t ldk,
                          float* v, int64_t ldv, cudaStream_t s) {
  if (s_rows <= 0) return cudaSuccess;
  const int64_t total = heads * (nope + rope + vdim);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks_for(total, 256), 64)), ydim(s_rows));
  expand_kv_kernel<<<grid, 256, 0, s>>>(s_rows, kvb, ldkvb, k_rope, ldkr, heads, nope, rope, vdim, k, ldk, v,
                                        ldv);
  return launch_status();
}

cudaError_t cache_write(const float* rows, int64_t ldr, int64_t n, const DevPool& c, const int32_t* slots,
                        cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  cache_write_kernel<<<dim3(1, ydim(n)), 256, 0, s>>>(n, rows, ldr, c, slots);
  return launch_status();
}

cudaError_t cache_gather(const DevPool& c, const int32_t* slots, int64_t n, float* out, int64_t ldo,
                         cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  cache_gather_kernel<<<dim3(1, ydim(n)), 256, 0, s>>>(n, c, slots, out, ldo);
  return launch_status();
}

}  // namespace moert::cuda
