#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace moert::kernels {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// F16C from CPUID directly: clang 14's __builtin_cpu_supports does not know "f16c".
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_F16C) != 0;
}
#endif

CpuIsa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma") && has_f16c())
    return CpuIsa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c()) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kPortable;
}

CpuIsa clamp(CpuIsa want) {
  const CpuIsa best = cpu_isa_supported();
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

CpuIsa initial() {
  CpuIsa isa = cpu_isa_supported();
  if (const char* e = std::getenv("MOERT_CPU_ISA")) {
    if (!std::strcmp(e, "portable"))
      isa = CpuIsa::kPortable;
    else if (!std::strcmp(e, "avx2"))
      isa = clamp(CpuIsa::kAvx2);
    else if (!std::strcmp(e, "avx512"))
      isa = clamp(CpuIsa::kAvx512);
  }
  return isa;
}

std::atomic<int>& current() {
  static std::atomic<int> v{static_cast<int>(initial())};
  return v;
}

bool detect_vbmi() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi");
#else
  return false;
#endif
}

std::atomic<bool>& vbmi_on() {
  static std::atomic<bool> v{cpu_vbmi_supported() && !env_is("MOERT_CPU_VBMI", {"off"})};
  return v;
}

}  // namespace

bool cpu_vbmi_supported() {
  static const bool has = detect_vbmi();
  return has;
}

bool cpu_vbmi() {
  return vbmi_on().load(std::memory_order_relaxed);
}

void set_cpu_vbmi(bool on) {
  vbmi_on().store(on && cpu_vbmi_supported(), std::memory_order_relaxed);
}

CpuIsa cpu_isa_supported() {
  static const CpuIsa best = detect();
  return best;
}

CpuIsa cpu_isa() {
  return static_cast<CpuIsa>(current().load(std::memory_order_relaxed));
}

void set_cpu_isa(CpuIsa isa) {
  current().store(static_cast<int>(clamp(isa)), std::memory_order_relaxed);
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    default:
      return "portable";
  }
}

bool env_is(const char* var, std::initializer_list<const char*> values) {
  const char* e = std::getenv(var);
  if (!e) return false;
  for (const char* v : values)
    if (!std::strcmp(e, v)) return true;
  return false;
}

}  // namespace moert::kernels
