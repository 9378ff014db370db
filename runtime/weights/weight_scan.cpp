#include "weights/weight_scan.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "util/error.h"

namespace moert {
namespace {

constexpr int64_t kBlock = 8192;  // elements per branch-free pass; a bad block is searched again exactly

template <typename T>
inline T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// A 16-bit float is non-finite when all exponent bits are set.
inline bool bad16(uint16_t v, uint16_t exp_mask) {
  return (v & exp_mask) == exp_mask;
}
inline bool bad32(uint32_t v, bool scale) {
  if ((v & 0x7F800000u) == 0x7F800000u) return true;              // NaN or Inf
  return scale && ((v & 0x80000000u) || (v & 0x7FFFFFFFu) == 0);  // negative or zero
}
inline bool bad_e4m3(uint8_t v) {
  return (v & 0x7F) == 0x7F;
}  // e4m3fn: S.1111.111 is NaN, no Inf

int64_t first_in_block(const uint8_t* d, int64_t n, DType t, bool scale);

// SWAR over 64-bit words: per lane, the masked exponent (or e4m3 magnitude) plus one unit carries into the
// lane's top bit exactly when every masked bit is set, so one add and two ands test 8, 4 or 2 values; the
// loop over words vectorises. The masks never let a carry cross into the next lane.
struct Swar {
  uint64_t mask, one, top;
};
constexpr Swar kSwarE4m3{0x7F7F7F7F7F7F7F7Full, 0x0101010101010101ull, 0x8080808080808080ull};
constexpr Swar kSwarBf16{0x7F807F807F807F80ull, 0x0080008000800080ull, 0x8000800080008000ull};
constexpr Swar kSwarF16{0x7C007C007C007C00ull, 0x0400040004000400ull, 0x8000800080008000ull};
constexpr Swar kSwarF32{0x7F8000007F800000ull, 0x0080000000800000ull, 0x8000000080000000ull};

// Cloned for AVX-512 and AVX2 machines (GCC picks the clone for the CPU at load time): the word loop then
// tests 64 or 32 bytes per instruction instead of SSE2's 16. Not under sanitizers: the clones' resolver
// is an IFUNC that the dynamic loader runs before the sanitizer runtime is up (a crash at startup).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__) && \
    !defined(__SANITIZE_ADDRESS__)
#define MOERT_SCAN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOERT_SCAN_CLONES
#endif
MOERT_SCAN_CLONES bool swar_bad(const uint8_t* d, size_t bytes, const Swar& k) {
  uint64_t acc = 0;
  const size_t words = bytes / 8;
  for (size_t i = 0; i < words; ++i) acc |= ((load<uint64_t>(d + 8 * i) & k.mask) + k.one) & k.top;
  return acc != 0;
}

bool block_bad(const uint8_t* d, int64_t n, DType t, bool scale) {
  const size_t esize = dtype_size(t), bytes = static_cast<size_t>(n) * esize, whole = bytes / 8 * 8;
  bool bad = false;
  switch (t) {
    case DType::kBF16:
      bad = swar_bad(d, whole, kSwarBf16);
      break;
    case DType::kF16:
      bad = swar_bad(d, whole, kSwarF16);
      break;
    case DType::kF32:
      if (scale) {  // block scales: few values, and zero or negative is bad too
        unsigned acc = 0;
        for (int64_t i = 0; i < n; ++i) acc |= bad32(load<uint32_t>(d + 4 * i), true);
        return acc != 0;
      }
      bad = swar_bad(d, whole, kSwarF32);
      break;
    case DType::kF8E4M3:
      bad = swar_bad(d, whole, kSwarE4m3);
      break;
    default:
      return false;
  }
  // The elements past the last whole word.
  return bad || first_in_block(d + whole, static_cast<int64_t>((bytes - whole) / esize), t, scale) >= 0;
}

int64_t first_in_block(const uint8_t* d, int64_t n, DType t, bool scale) {
  for (int64_t i = 0; i < n; ++i) {
    const bool bad = t == DType::kBF16     ? bad16(load<uint16_t>(d + 2 * i), 0x7F80)
                     : t == DType::kF16    ? bad16(load<uint16_t>(d + 2 * i), 0x7C00)
                     : t == DType::kF32    ? bad32(load<uint32_t>(d + 4 * i), scale)
                     : t == DType::kF8E4M3 ? bad_e4m3(d[i])
                                           : false;
    if (bad) return i;
  }
  return -1;
}

bool is_float(DType t) {
  return t == DType::kBF16 || t == DType::kF16 || t == DType::kF32 || t == DType::kF8E4M3;
}

}  // namespace

int64_t first_bad_element(const uint8_t* data, int64_t n, DType t, bool scale) {
  const size_t esize = dtype_size(t);
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    if (block_bad(data + b * esize, m, t, scale)) return b + first_in_block(data + b * esize, m, t, scale);
  }
  return -1;
}

void scan_weights(const WeightStore& store, int threads) {
  // Work items: tensors cut into chunks of about 16 MB, so one huge embedding does not serialise the scan.
  struct Chunk {
    size_t tensor;
    int64_t begin, n;
  };
  const std::vector<std::pair<std::string, const TensorInfo*>> tensors = store.tensors_by_name();
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = *tensors[i].second;
    if (!is_float(t.dtype)) continue;
    const int64_t n = t.numel(), step = std::max<int64_t>(1, (16 << 20) / dtype_size(t.dtype));
    for (int64_t b = 0; b < n; b += step) chunks.push_back({i, b, std::min(step, n - b)});
  }
  // The earliest bad (tensor, index) wins, so the message does not depend on thread timing.
  std::vector<std::atomic<int64_t>> bad(tensors.size());
  for (auto& b : bad) b.store(INT64_MAX);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t c; (c = next.fetch_add(1)) < chunks.size();) {
      const Chunk& ch = chunks[c];
      const TensorInfo& t = *tensors[ch.tensor].second;
      const bool scale = tensors[ch.tensor].first.ends_with("_scale_inv");
      const int64_t i = first_bad_element(t.data + ch.begin * dtype_size(t.dtype), ch.n, t.dtype, scale);
      if (i < 0) continue;
      int64_t cur = bad[ch.tensor].load();
      while (ch.begin + i < cur && !bad[ch.tensor].compare_exchange_weak(cur, ch.begin + i)) {
      }
    }
  };
  unsigned n_threads = threads > 0 ? static_cast<unsigned>(threads) : std::thread::hardware_concurrency();
  n_threads = std::max(1u, std::min<unsigned>(n_threads, static_cast<unsigned>(chunks.size())));
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < n_threads; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t at = bad[i].load();
    if (at == INT64_MAX) continue;
    const TensorInfo& t = *tensors[i].second;
    const bool scale = tensors[i].first.ends_with("_scale_inv");
    std::string what;
    if (t.dtype == DType::kF8E4M3) {
      what = "an e4m3 NaN byte";
    } else if (scale) {
      what = "a block scale that is not finite and positive";
    } else {
      what = "a non-finite value (NaN or Inf)";
    }
    fail(ErrorCode::kFormat, store.file_of(tensors[i].first) + ": tensor '" + tensors[i].first + "' (" +
                                 dtype_name(t.dtype) + ") has " + what + " at index " + std::to_string(at) +
                                 " (load option check_weights 0 skips this check)");
  }
}

}  // namespace moert
