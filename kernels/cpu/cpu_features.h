// Run-time choice of the instruction set the CPU kernels use. Every fast path is compiled per function
// with __attribute__((target(...))), so the library builds with plain -O3 and runs on any x86-64 (or any
// other architecture, where only the portable code exists).
#pragma once
#include <initializer_list>

namespace moert::kernels {

enum class CpuIsa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

// The level in use: the best the CPU supports, lowered by the environment variable MOERT_CPU_ISA
// (portable | avx2 | avx512) or by set_cpu_isa.
CpuIsa cpu_isa();
// The best level this CPU supports.
CpuIsa cpu_isa_supported();
// Forces a level (clamped to what the CPU supports); for tests and benchmarks. Not thread-safe with
// kernels running concurrently.
void set_cpu_isa(CpuIsa isa);
const char* cpu_isa_name(CpuIsa isa);

// AVX-512 VBMI (vpermb, vpermi2b): with it the AVX-512 kernels convert e4m3 weights to fp32 by a 128-entry
// table lookup instead of widening through fp16 (the same values, fewer instructions per weight). On where
// the CPU has it, unless MOERT_CPU_VBMI=off; set_cpu_vbmi is for tests and benchmarks (clamped to what the
// CPU supports, not thread-safe with kernels running).
bool cpu_vbmi();
// Whether the environment variable `var` is set to one of `values` (the kernels' run-time switches).
bool env_is(const char* var, std::initializer_list<const char*> values);
bool cpu_vbmi_supported();
void set_cpu_vbmi(bool on);

}  // namespace moert::kernels
