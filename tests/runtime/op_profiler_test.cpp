// Backend::set_op_profiler: every op a set profiler sees is reported once with its name, rows and (for a
// GEMM-like op) its weight's shape; nothing is reported without one, or for an op its checks reject.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "util/error.h"

namespace moert {
namespace {

struct Call {
  std::string op;
  int64_t rows, n, k;
  double seconds;
};

class Recorder final : public OpProfiler {
 public:
  void record(const char* op, int64_t rows, int64_t n, int64_t k, double seconds) override {
    calls.push_back({op, rows, n, k, seconds});
  }
  std::vector<Call> calls;
};

TEST(OpProfiler, ReportsEachOpWithItsShapeOnlyWhileSet) {
  auto b = make_cpu_backend(1);
  Tensor x = b->empty(DType::kF32, 3, 8), y = b->empty(DType::kF32, 3, 8), out = b->empty(DType::kF32, 3, 5);
  WeightMatrix w;
  w.w = b->empty(DType::kF32, 5, 8);
  b->fill_zero(x);
  b->fill_zero(y);
  b->fill_zero(w.w);
  Recorder rec;
  b->linear(x, w, out, ActMode::kF32);  // before: not seen
  b->set_op_profiler(&rec);
  b->linear(x, w, out, ActMode::kF32);
  b->add(x, y);
  EXPECT_THROW(b->linear(x, w, y, ActMode::kF32), Error);  // out has the wrong shape: rejected, not run
  b->set_op_profiler(nullptr);
  b->add(x, y);  // after: not seen
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_EQ(rec.calls[0].op, "linear");
  EXPECT_EQ(rec.calls[0].rows, 3);
  EXPECT_EQ(rec.calls[0].n, 5);
  EXPECT_EQ(rec.calls[0].k, 8);
  EXPECT_EQ(rec.calls[1].op, "add");
  EXPECT_EQ(rec.calls[1].rows, 3);
  EXPECT_EQ(rec.calls[1].n, 0);
  for (const Call& c : rec.calls) EXPECT_GE(c.seconds, 0.0) << c.op;
}

}  // namespace
}  // namespace moert
