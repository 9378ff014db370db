// Helpers for the kernel tests: random inputs, weights of every stored type, the instruction sets to test.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/weight_ref.h"

namespace moert::kernels::test {

// The instruction sets this CPU can run (portable always).
std::vector<CpuIsa> isas();
std::string isa_param_name(CpuIsa isa);

// Sets the ISA for the scope of a test and restores the previous one.
struct IsaScope {
  CpuIsa saved;
  explicit IsaScope(CpuIsa isa) : saved(cpu_isa()) { set_cpu_isa(isa); }
  ~IsaScope() { set_cpu_isa(saved); }
};

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f);
// Never exactly zero: magnitude in [lo, hi), random sign.
std::vector<float> rand_nonzero(size_t n, std::mt19937& rng, float lo, float hi);

// A [n, k] weight of `type` with random non-zero values (fp8: random codes except NaN; scale per 128x128
// block, random), and its values as doubles, computed by the textbook formula.
struct TestWeight {
  DType type;
  int64_t n = 0, k = 0, ld = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> scale;
  int64_t scale_ld = 0;
  std::vector<double> value;  // [n, k], dequantised
  WeightRef ref() const;
};
TestWeight make_weight(DType type, int64_t n, int64_t k, std::mt19937& rng, int64_t ld_pad = 0);

// The value of e4m3 code b from its definition: (-1)^s 2^(e-7) (1 + m/8), subnormal 2^-6 m/8.
double e4m3_formula(uint8_t b);

const char* type_name(DType t);

}  // namespace moert::kernels::test
