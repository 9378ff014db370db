#include "kernel_test_util.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/numeric_types.h"

namespace moert::kernels::test {

std::vector<CpuIsa> isas() {
  std::vector<CpuIsa> v{CpuIsa::kPortable};
  if (static_cast<int>(cpu_isa_supported()) >= static_cast<int>(CpuIsa::kAvx2)) v.push_back(CpuIsa::kAvx2);
  if (cpu_isa_supported() == CpuIsa::kAvx512) v.push_back(CpuIsa::kAvx512);
  return v;
}

std::string isa_param_name(CpuIsa isa) {
  return cpu_isa_name(isa);
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) {
    do x = d(rng);
    while (x == 0.0f);
  }
  return v;
}

std::vector<float> rand_nonzero(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = sign(rng) ? -u(rng) : u(rng);
  return v;
}

double e4m3_formula(uint8_t b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  const double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -mag : mag;
}

const char* type_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "f16";
    case DType::kF8E4M3:
      return "fp8";
    default:
      break;
  }
  return "?";
}

TestWeight make_weight(DType type, int64_t n, int64_t k, std::mt19937& rng, int64_t ld_pad) {
  TestWeight w;
  w.type = type;
  w.n = n;
  w.k = k;
  w.ld = k + ld_pad;
  const int es = type == DType::kF32 ? 4 : type == DType::kF8E4M3 ? 1 : 2;
  w.bytes.assign(static_cast<size_t>(n * w.ld * es + 64), 0);
  w.value.resize(n * k);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  std::uniform_int_distribution<int> code(0, 255);
  if (type == DType::kF8E4M3) {
    w.scale_ld = (k + 127) / 128 + 1;  // a padded scale row
    std::uniform_real_distribution<float> us(0.5e-3f, 4e-3f);
    w.scale.resize(((n + 127) / 128) * w.scale_ld);
    for (auto& s : w.scale) s = us(rng);
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      uint8_t* p = w.bytes.data() + (r * w.ld + c) * es;
      double v = 0;
      switch (type) {
        case DType::kF32: {
          float f;
          do f = nd(rng);
          while (f == 0.0f);
          std::memcpy(p, &f, 4);
          v = f;
          break;
        }
        case DType::kBF16: {
          uint16_t h;
          do h = float_to_bf16(nd(rng));
          while ((h & 0x7fff) == 0);
          std::memcpy(p, &h, 2);
          v = bf16_to_float(h);
          break;
        }
        case DType::kF16: {
          // fp16 bits from the definition: include subnormals now and then
          uint16_t h;
          do {
            const int e = std::uniform_int_distribution<int>(0, 100)(rng) < 5 ? 0 : 10 + code(rng) % 8;
            h = static_cast<uint16_t>((code(rng) & 1) << 15 | e << 10 | (code(rng) << 2 | (code(rng) & 3)));
          } while ((h & 0x7fff) == 0);
          std::memcpy(p, &h, 2);
          const int e = (h >> 10) & 31, m = h & 1023;
          const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
          v = (h >> 15) ? -mag : mag;
          break;
        }
        case DType::kF8E4M3: {
          int b;
          do b = code(rng);
          while ((b & 0x7f) == 0x7f || (b & 0x7f) == 0);
          *p = static_cast<uint8_t>(b);
          // PyTorch: q.float() * scale in fp32
          v = static_cast<float>(static_cast<float>(e4m3_formula(static_cast<uint8_t>(b))) *
                                 w.scale[(r >> 7) * w.scale_ld + (c >> 7)]);
          break;
        }
        default:
          throw std::invalid_argument("make_weight: not a weight type");
      }
      w.value[r * k + c] = v;
    }
  return w;
}

WeightRef TestWeight::ref() const {
  WeightRef r;
  r.type = type;
  r.data = bytes.data();
  r.n = n;
  r.k = k;
  r.ld = ld;
  r.scale = scale.empty() ? nullptr : scale.data();
  r.scale_ld = scale_ld;
  r.row0 = 0;
  return r;
}

}  // namespace moert::kernels::test
