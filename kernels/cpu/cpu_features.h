// Run-time choice of the instruction set the CPU kernels use. Every fast path is compiled per function
// with __attribute__((target(...))), so the library builds with plain -O3 and runs on any x86-64 (or any
// other architecture, where only the portable code exists).
#pragma once

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

}  // namespace moert::kernels
