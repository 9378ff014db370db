// ThreadPool: every index exactly once, chunks respect the grain, many back-to-back calls, and idle
// workers sleep instead of spinning.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"

namespace moert::kernels {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{64}, int64_t{1000}})
      for (int64_t grain : {int64_t{1}, int64_t{3}, int64_t{100}}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<int> calls{0};
        parallel_for(&pool, n, grain, [&](int64_t b, int64_t e, int tid) {
          EXPECT_LT(b, e);
          EXPECT_GE(tid, 0);
          EXPECT_LT(tid, threads);
          if (e != n) {
            EXPECT_GE(e - b, std::min(grain, n));
          }
          for (int64_t i = b; i < e; ++i) hits[i]++;
          calls++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << grain;
        EXPECT_LE(calls.load(), threads);
      }
  }
}

TEST(ThreadPool, ManyBackToBackCalls) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int it = 0; it < 20000; ++it)
    pool.parallel_for(2, 1, [&](int64_t b, int64_t e, int) { sum += e - b; });
  EXPECT_EQ(sum.load(), 40000);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

TEST(ThreadPool, SleepsWhenIdle) {
  ThreadPool pool(3);
  pool.parallel_for(3, 1, [](int64_t, int64_t, int) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // past the spin window
  const double c0 = cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const double used = cpu_seconds() - c0;
  EXPECT_LT(used, 0.1) << "idle workers used " << used << " s of CPU in 0.4 s";
  // and still works afterwards
  std::atomic<int> n{0};
  pool.parallel_for(3, 1, [&](int64_t b, int64_t e, int) { n += static_cast<int>(e - b); });
  EXPECT_EQ(n.load(), 3);
}

}  // namespace
}  // namespace moert::kernels

namespace moert::kernels {
namespace {

// A pool destroyed right after construction (its workers may not have started yet), with or without a job.
TEST(ThreadPool, CreateAndDestroyQuickly) {
  for (int it = 0; it < 300; ++it) {
    ThreadPool pool(1 + it % 4);
    if (it % 2) {
      std::atomic<int> n{0};
      pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int) { n += static_cast<int>(e - b); });
      ASSERT_EQ(n.load(), 10);
    }
  }
}

}  // namespace
}  // namespace moert::kernels
