// The bench programs' timing helpers: seconds since a steady-clock point, and the median with the spread
// (min, max) of repeated measurements.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

namespace moert::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stats {
  double median = 0, lo = 0, hi = 0;
};
inline Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.lo = v.front();
  s.hi = v.back();
  return s;
}

}  // namespace moert::bench
