// The load-time weight scan (runtime/weights/weight_scan.cpp) over a large mapped checkpoint: writes one
// FP8 e4m3 tensor and one BF16 tensor of the given total size (default 2 GiB, random finite values) into a
// single-file checkpoint, maps it like a load does, and times scan_weights at 1 and 2 threads with the
// file in the page cache (best of 3), then extrapolates to DeepSeek-V3's 671B checkpoint (~690 GB).
//   moert_weight_scan_bench [--dir DIR] [--gib G] [--keep]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "weights/weight_scan.h"
#include "weights/weight_store.h"

namespace {

void write_checkpoint(const std::string& dir, uint64_t bytes) {
  std::filesystem::create_directories(dir);
  const uint64_t fp8 = bytes / 8 * 7 / 4096 * 4096,
                 bf16 = (bytes - fp8) / 2 / 4096 * 4096;  // mostly FP8, as V3
  const std::string header = "{\"w.fp8\":{\"dtype\":\"F8_E4M3\",\"shape\":[" + std::to_string(fp8 / 4096) +
                             ",4096],\"data_offsets\":[0," + std::to_string(fp8) +
                             "]},\"w.bf16\":{\"dtype\":\"BF16\",\"shape\":[" + std::to_string(bf16 / 4096) +
                             ",4096],\"data_offsets\":[" + std::to_string(fp8) + "," +
                             std::to_string(fp8 + bf16 * 2) + "]}}";
  std::ofstream f(dir + "/model.safetensors", std::ios::binary | std::ios::trunc);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
  f << header;
  std::mt19937_64 rng(1);
  std::vector<uint8_t> buf(1 << 24);
  for (uint64_t done = 0; done < fp8; done += buf.size()) {
    for (size_t i = 0; i < buf.size(); i += 8) {
      uint64_t r = rng() & 0x7E7E7E7E7E7E7E7Eull;  // never 0x7F/0xFF: finite e4m3 bytes
      std::memcpy(buf.data() + i, &r, 8);
    }
    f.write(reinterpret_cast<const char*>(buf.data()),
            static_cast<std::streamsize>(std::min<uint64_t>(buf.size(), fp8 - done)));
  }
  for (uint64_t done = 0; done < bf16 * 2; done += buf.size()) {
    for (size_t i = 0; i < buf.size(); i += 2) {
      const uint16_t v = static_cast<uint16_t>(0x3C00 | (rng() & 0x83FF));  // finite bf16, |x| in [2^-7, 2)
      std::memcpy(buf.data() + i, &v, 2);
    }
    f.write(reinterpret_cast<const char*>(buf.data()),
            static_cast<std::streamsize>(std::min<uint64_t>(buf.size(), bf16 * 2 - done)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/moert-weight-scan-bench";
  double gib = 2.0;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--gib" && i + 1 < argc)
      gib = std::stod(argv[++i]);
    else if (a == "--keep")
      keep = true;
    else {
      std::fprintf(stderr, "usage: moert_weight_scan_bench [--dir DIR] [--gib G] [--keep]\n");
      return 2;
    }
  }
  if (!std::filesystem::exists(dir + "/model.safetensors"))
    write_checkpoint(dir, static_cast<uint64_t>(gib * (1ull << 30)));
  moert::WeightStore store(dir);
  const double bytes = static_cast<double>(std::filesystem::file_size(dir + "/model.safetensors"));
  moert::scan_weights(store, 2);  // warm the page cache
  for (int threads : {1, 2}) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      moert::scan_weights(store, threads);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double gbs = bytes / best / 1e9;
    std::printf(
        "threads %d: %.2f GB in %.3f s = %.1f GB/s; DeepSeek-V3 (690 GB) from the page cache: %.0f s\n",
        threads, bytes / 1e9, best, gbs, 690.0 / gbs);
  }
  // The machine's read speed over the same mapped bytes for comparison: glibc's memchr (vectorised),
  // split over the same thread counts.
  const moert::TensorInfo* t = store.find("w.fp8");
  for (int threads : {1, 2}) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      const size_t part = t->nbytes / threads;
      for (int i = 0; i < threads; ++i)
        pool.emplace_back([&, i] {
          if (std::memchr(t->data + i * part, 0x7F, part)) std::abort();
        });
      for (auto& th : pool) th.join();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("memchr baseline, threads %d: %.1f GB/s\n", threads, t->nbytes / best / 1e9);
  }
  if (!keep) std::filesystem::remove_all(dir);
  return 0;
}
