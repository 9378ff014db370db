// Row gathers/dequantisation, MLA k/v expansion and the paged latent cache copies.
#include "common.cuh"

namespace moert::cuda {
namespace {

template <class TO>
__global__ void dequant_rows_kernel(DevWeight w, const int32_t* ids, int64_t rows, int64_t col0, int64_t cols,
                                    TO* out, int64_t ldo) {
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
      st_act(out, r * ldo + c, v);
    }
  }
}

// A plain copy of elements (the four share one type T): no conversion, so bf16 values pass unchanged.
template <class T>
__global__ void expand_kv_kernel(int64_t s_rows, const T* kvb, int64_t ldkvb, const T* k_rope, int64_t ldkr,
                                 int64_t heads, int64_t nope, int64_t rope, int64_t vdim, T* k, int64_t ldk,
                                 T* v, int64_t ldv) {
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

template <class T>
__global__ void cache_write_kernel(int64_t n, const T* rows, int64_t ldr, DevPool c, const int32_t* slots) {
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const int64_t at = slot_offset(c, slots[i]);
    for (int64_t x = threadIdx.x; x < c.width; x += blockDim.x) {
      const float v = ld_act(rows, i * ldr + x);
      if (c.bf16)
        static_cast<uint16_t*>(c.base)[at + x] = f32_to_bf16(v);
      else
        static_cast<float*>(c.base)[at + x] = v;
    }
  }
}

template <class T>
__global__ void cache_gather_kernel(int64_t n, DevPool c, const int32_t* slots, T* out, int64_t ldo) {
  for (int64_t j = blockIdx.y; j < n; j += gridDim.y) {
    const int64_t at = slot_offset(c, slots[j]);
    for (int64_t x = threadIdx.x; x < c.width; x += blockDim.x)
      st_act(out, j * ldo + x,
             c.bf16 ? bf16_to_f32(static_cast<const uint16_t*>(c.base)[at + x])
                    : static_cast<const float*>(c.base)[at + x]);
  }
}

}  // namespace

cudaError_t dequant_rows(const DevWeight& w, const int32_t* ids, int64_t rows, int64_t col0, int64_t cols,
                         const DevAct& out, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks_for(cols, 256), 64)), ydim(rows));
  MOERT_CUDA_ACT_SWITCH(out.bf16, TO, {
    dequant_rows_kernel<TO><<<grid, 256, 0, s>>>(w, ids, rows, col0, cols, act_ptr<TO>(out), out.ld);
  });
  return launch_status();
}

cudaError_t mla_expand_kv(const DevAct& kvb, const DevAct& k_rope, int64_t s_rows, int64_t heads,
                          int64_t nope, int64_t rope, int64_t vdim, const DevAct& k, const DevAct& v,
                          cudaStream_t s) {
  if (s_rows <= 0) return cudaSuccess;
  if (k_rope.bf16 != kvb.bf16 || k.bf16 != kvb.bf16 || v.bf16 != kvb.bf16) return cudaErrorInvalidValue;
  const int64_t total = heads * (nope + rope + vdim);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks_for(total, 256), 64)), ydim(s_rows));
  MOERT_CUDA_ACT_SWITCH(kvb.bf16, T, {
    expand_kv_kernel<T><<<grid, 256, 0, s>>>(s_rows, act_ptr<const T>(kvb), kvb.ld, act_ptr<const T>(k_rope),
                                             k_rope.ld, heads, nope, rope, vdim, act_ptr<T>(k), k.ld,
                                             act_ptr<T>(v), v.ld);
  });
  return launch_status();
}

cudaError_t cache_write(const DevAct& rows, int64_t n, const DevPool& c, const int32_t* slots,
                        cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  MOERT_CUDA_ACT_SWITCH(rows.bf16, T, {
    cache_write_kernel<T><<<dim3(1, ydim(n)), 256, 0, s>>>(n, act_ptr<const T>(rows), rows.ld, c, slots);
  });
  return launch_status();
}

cudaError_t cache_gather(const DevPool& c, const int32_t* slots, int64_t n, const DevAct& out,
                         cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  MOERT_CUDA_ACT_SWITCH(out.bf16, T, {
    cache_gather_kernel<T><<<dim3(1, ydim(n)), 256, 0, s>>>(n, c, slots, act_ptr<T>(out), out.ld);
  });
  return launch_status();
}

}  // namespace moert::cuda
