// x @ W^T for FP8 weights on the CPU's matrix instructions. With FP8 activations (DeepSeek's FP8 GEMM):
// x quantised per 1x128 tile (scale = amax / 448, e4m3 codes, as act_quant), the e4m3 codes of x and W
// held exactly as bf16, their products summed in fp32 per 128-wide K block by AVX-512-BF16 vdpbf16ps, each
// block sum scaled by x's tile scale times W's block scale; or the same on AMX tiles (tdpbf16ps). The same
// products as gemm_xwt on act_quant_dequant(x) (the reference), summed in another order (differences at
// fp32 rounding level). With fp32 activations (gemm_xwt_amx, AMX tiles only): x split exactly into bf16
// terms, so the products are exact and the result is gemm_xwt's up to fp32 rounding.
#pragma once
#include <cstdint>

#include "thread_pool.h"
#include "weight_ref.h"

namespace moert::kernels {

// The matrix-unit paths this CPU has (CPUID). AMX also needs Linux's permission for the tile state, asked for
// only when the tiles are first about to be used (amx_ready: the first prefill of more than 16 rows with FP8
// weights, in either activation mode; or a q4 prefill): once granted, the process's signal stacks must hold
// the larger state (8 KiB more), so a host that runs signal handlers on small alternate stacks should turn
// the tiles off (MOERT_CPU_MATMUL=off) before it loads a model. A host that never prefills (nor asks
// moert_model_info_int for the cpu_amx_* paths) is not asked.
struct CpuMatmulFeatures {  // avx512_vnni: with AVX-512 F and BW, and the OS saving the ZMM state
  bool avx512_bf16 = false, avx512_vnni = false, amx_tile = false, amx_bf16 = false, amx_int8 = false;
};
const CpuMatmulFeatures& cpu_matmul_features();

// Which path gemm_xwt_fp8act takes:
//  - AMX tiles (gemm_fp8act_amx.h) by default where the CPU has AMX-BF16, Linux permits the tile state and
//    the tiles agreed once with their scalar model (amx_ready); MOERT_CPU_MATMUL=off or set_amx_use(kOff)
//    turns them off; kModel runs the same kernel on the scalar model (tests, on CPUs without AMX; needs
//    AVX-512-BF16 for the packing);
//  - else AVX-512-BF16 vdpbf16ps, only when asked for (MOERT_CPU_MATMUL=on or avx512-bf16, or
//    set_cpu_matmul(true)): on the CPU measured it was slower than the fp32 FMA kernel;
//  - else none (the caller quantises and uses gemm_xwt). Also none (but kModel) where cpu_isa() is lowered
//    below AVX-512.
enum class AmxUse { kAuto, kModel, kOff };
void set_amx_use(AmxUse use);  // for tests and benchmarks; not thread-safe with kernels running
AmxUse amx_use();
bool amx_ready();  // AMX-BF16 + Linux's permission + the one-time self-check, decided on the first call
bool amx_self_check_failed();  // the tiles were usable but disagreed with their model (so are not used)
// The same guard for the q4 prefill GEMM's AMX-INT8 tiles (gemm_q4.h): AMX-INT8 + the same permission + their
// own one-time self-check. AmxUse applies to them too (kOff: never; kModel: the scalar model).
bool amx_int8_ready();
bool amx_int8_self_check_failed();
bool cpu_matmul_enabled();
void set_cpu_matmul(bool on);   // the AVX-512-BF16 path; not thread-safe with kernels running
const char* cpu_matmul_path();  // "amx-bf16", "amx-model", "avx512-bf16" or "none"

// y = act_quant(x) @ W^T as above, for m rows. False (nothing written) when no matrix path is in use or
// the weight is not FP8 or its row slice does not start on a 32-row boundary: the caller then uses
// act_quant_dequant + gemm_xwt. Every row's result is independent of m and of the threads.
bool gemm_xwt_fp8act(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                     ThreadPool* pool);

// y = x @ W^T for FP8 weights and fp32 x (the reference numerics) on the AMX tiles: each x value split into
// three bf16 terms (the top 8 significant bits, the next 8, the last 8; exact for |x| >= 2^-100), W's e4m3
// codes exact in bf16, so every x * code product is exact, summed in fp32 per 128-wide K block and the sum
// scaled once by W's block scale (gemm_xwt rounds code * scale, then each product): equal to gemm_xwt up to
// fp32 rounding. Values the tiles' denormal flushing reaches (terms or products below 2^-126, i.e. |x|
// below about 2^-100) lose precision or read as zero. A block sum overflows where gemm_xwt's products would
// not only for |x| near FLT_MAX / 448. Non-finite x reaches y as in gemm_xwt. Only where the tiles are in
// use (amx_ready and amx_use kAuto, or kModel); false (nothing written) otherwise, or where W is not FP8 or
// its row slice does not start on a 32-row boundary. Rows independent of m and of the threads.
bool gemm_xwt_amx(const float* x, int64_t m, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
                  ThreadPool* pool);

}  // namespace moert::kernels
