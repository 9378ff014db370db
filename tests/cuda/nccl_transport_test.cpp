// The NCCL transport (runtime/ep/transport_nccl.h). Without a GPU: option checks, the id-file wait timing
// out before any CUDA call, no device reported as kUnsupported (also to the peers of a Transport
// bootstrap). With one GPU: a one-rank group (all_to_all of several sizes, all-reduce, barrier, abort,
// all_to_all_device). With two: two ranks in threads, bootstrapped by an id file and by an in-process
// transport, and a time-out that the peer sees as kCancelled.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "ep/transport_nccl.h"
#include "util/error.h"

namespace moert::ep {
namespace {

using std::chrono::milliseconds;

// 0 when cudaGetDeviceCount fails (no driver, no device).
int devices() {
  return cuda_device_count();
}

#define NEED_DEVICES(k)                                                                             \
  do {                                                                                              \
    if (!nccl_built()) GTEST_SKIP() << "this build has no NCCL transport";                          \
    if (devices() < (k)) GTEST_SKIP() << "needs " << (k) << " CUDA device(s), found " << devices(); \
  } while (0)

// The code of the moert::Error fn throws (0: none), its message in *msg.
int code_of(const std::function<void()>& fn, std::string* msg = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return static_cast<int>(e.code());
  }
  return 0;
}
constexpr int code(ErrorCode c) {
  return static_cast<int>(c);
}

std::string temp_path(const std::string& name) {
  static std::atomic<int> n{0};
  return ::testing::TempDir() + "moert_nccl_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" +
         name;
}

// fn(rank) on `n` threads; the messages of what they threw ("" when nothing).
std::vector<std::string> run_ranks(int n, const std::function<void(int)>& fn) {
  std::vector<std::string> err(n);
  std::vector<std::thread> th;
  for (int r = 0; r < n; ++r)
    th.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        err[r] = e.what();
      }
    });
  for (auto& t : th) t.join();
  return err;
}

Bytes pattern(size_t n, int seed) {
  Bytes b(n);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

TEST(NcclTransport, BuiltAsConfigured) {
  EXPECT_EQ(nccl_built(), MOERT_TEST_NCCL != 0);
}

TEST(NcclTransport, RejectsBadOptionsBeforeCuda) {
  auto make = [](NcclOptions o) { return code_of([&] { make_nccl_transport(std::move(o)); }); };
  if (!nccl_built()) {
    EXPECT_EQ(make({}), code(ErrorCode::kUnsupported));
    GTEST_SKIP() << "this build has no NCCL transport (checked: kUnsupported)";
  }
  const int bad = code(ErrorCode::kInvalidArgument);
  NcclOptions o;
  o.size = 0;
  EXPECT_EQ(make(o), bad);
  o.size = 2;
  o.rank = 2;
  o.id_file = temp_path("id");
  EXPECT_EQ(make(o), bad);
  o.rank = -1;
  EXPECT_EQ(make(o), bad);
  o.rank = 1;
  o.id_file.clear();
  std::string msg;
  EXPECT_EQ(code_of([&] { make_nccl_transport(o); }, &msg), bad);
  EXPECT_NE(msg.find("id_file or bootstrap"), std::string::npos) << msg;
  o.id_file = temp_path("id");
  o.bootstrap = make_in_process_group(2)[1];
  EXPECT_EQ(make(o), bad);  // both
  o.id_file.clear();
  o.bootstrap = make_in_process_group(3)[1];
  EXPECT_EQ(make(o), bad);  // a bootstrap of another size
  o.bootstrap = make_in_process_group(2)[0];
  EXPECT_EQ(make(o), bad);  // of another rank
  o.bootstrap = make_in_process_group(2)[1];
  o.timeout = milliseconds(0);
  EXPECT_EQ(make(o), bad);
  o.timeout = milliseconds(1000);
  o.device = -2;
  EXPECT_EQ(make(o), bad);
}

TEST(NcclTransport, IdFileThatNeverAppearsTimesOut) {
  if (!nccl_built()) GTEST_SKIP() << "this build has no NCCL transport";
  NcclOptions o;
  o.rank = 1;
  o.size = 2;
  o.id_file = temp_path("never");
  o.timeout = milliseconds(300);
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg;
  EXPECT_EQ(code_of([&] { make_nccl_transport(o); }, &msg), code(ErrorCode::kTimeout));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(s, 0.25);
  EXPECT_LT(s, 5.0);
  EXPECT_NE(msg.find(o.id_file), std::string::npos) << msg;
}

TEST(NcclTransport, NoDeviceIsUnsupportedOnEveryRank) {
  if (!nccl_built()) GTEST_SKIP() << "this build has no NCCL transport";
  if (devices() > 0) GTEST_SKIP() << "a CUDA device is present (this checks the answer without one)";
  std::string msg;
  EXPECT_EQ(code_of([] { make_nccl_transport({}); }, &msg), code(ErrorCode::kUnsupported));
  EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
  // Over a Transport bootstrap rank 0 tells the others at once (no time-out).
  auto boot = make_in_process_group(2);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> codes(2);
  auto err = run_ranks(2, [&](int r) {
    NcclOptions o;
    o.rank = r;
    o.size = 2;
    o.bootstrap = boot[r];
    o.timeout = milliseconds(20000);
    codes[r] = code_of([&] { make_nccl_transport(o); });
  });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(err[r], "");
    EXPECT_EQ(codes[r], code(ErrorCode::kUnsupported)) << "rank " << r;
  }
}

TEST(NcclTransport, OneRankHostCollectives) {
  NEED_DEVICES(1);
  auto t = make_nccl_transport({});
  EXPECT_EQ(t->rank(), 0);
  EXPECT_EQ(t->size(), 1);
  EXPECT_EQ(t->device(), 0);
  int seed = 1;
  for (size_t n :
       {size_t(0), size_t(1), size_t(7), size_t(4096), size_t(1 << 20) + 3, size_t(0), size_t(100)}) {
    std::vector<Bytes> send{pattern(n, seed++)}, recv;
    t->all_to_all(send, recv);
    ASSERT_EQ(recv.size(), 1u);
    EXPECT_EQ(recv[0], send[0]) << n << " bytes";
  }
  std::vector<int64_t> vi{1, -2, INT64_MAX};
  t->all_reduce_sum(vi.data(), vi.size());
  EXPECT_EQ(vi, (std::vector<int64_t>{1, -2, INT64_MAX}));
  std::vector<double> vd{0.5, -1e300, 3.25};
  t->all_reduce_sum(vd.data(), vd.size());
  EXPECT_EQ(vd, (std::vector<double>{0.5, -1e300, 3.25}));
  t->all_reduce_sum(vi.data(), 0);
  t->barrier();
  t->barrier();
}

TEST(NcclTransport, AbortThenEveryCallIsCancelled) {
  NEED_DEVICES(1);
  auto t = make_nccl_transport({});
  t->barrier();
  t->abort("rank 0 failed: test reason");
  t->abort("a second reason is ignored");
  std::vector<std::function<void()>> calls{
      [&] { t->barrier(); },
      [&] {
        std::vector<Bytes> s(1), r;
        t->all_to_all(s, r);
      },
      [&] {
        int64_t v = 1;
        t->all_reduce_sum(&v, 1);
      },
      [&] {
        double v = 1;
        t->all_reduce_sum(&v, 1);
      },
      [&] { t->all_to_all_device(nullptr, {0}, nullptr, {0}, nullptr); }};
  for (auto& c : calls) {
    std::string msg;
    EXPECT_EQ(code_of(c, &msg), code(ErrorCode::kCancelled));
    EXPECT_NE(msg.find("test reason"), std::string::npos) << msg;
  }
}

// Device buffers: ranks' send and receive layouts from a size matrix bytes[src][dst].
void device_round(NcclTransport& t, const std::vector<std::vector<size_t>>& bytes) {
  const int n = t.size(), me = t.rank();
  std::vector<size_t> sb(n), rb(n);
  size_t ts = 0, tr = 0;
  for (int p = 0; p < n; ++p) {
    sb[p] = bytes[me][p];
    rb[p] = bytes[p][me];
    ts += sb[p];
    tr += rb[p];
  }
  Bytes hs;
  for (int p = 0; p < n; ++p) {
    Bytes b = pattern(sb[p], 1000 * me + p);
    hs.insert(hs.end(), b.begin(), b.end());
  }
  ASSERT_EQ(cudaSetDevice(t.device()), cudaSuccess);
  void *ds = nullptr, *dr = nullptr;
  ASSERT_EQ(cudaMalloc(&ds, ts + 1), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dr, tr + 1), cudaSuccess);
  cudaStream_t st;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(ds, hs.data(), ts, cudaMemcpyHostToDevice, st), cudaSuccess);  // ordered by `st`
  t.all_to_all_device(ds, sb, dr, rb, st);
  Bytes hr(tr);
  ASSERT_EQ(cudaMemcpy(hr.data(), dr, tr, cudaMemcpyDeviceToHost), cudaSuccess);
  size_t off = 0;
  for (int p = 0; p < n; ++p) {
    EXPECT_EQ(Bytes(hr.begin() + off, hr.begin() + off + rb[p]), pattern(rb[p], 1000 * p + me))
        << "from " << p;
    off += rb[p];
  }
  cudaStreamDestroy(st);
  cudaFree(ds);
  cudaFree(dr);
}

TEST(NcclTransport, OneRankDeviceAllToAll) {
  NEED_DEVICES(1);
  auto t = make_nccl_transport({});
  for (size_t n : {size_t(12345), size_t(0), size_t(7 << 20)}) device_round(*t, {{n}});
  EXPECT_EQ(code_of([&] {
              t->all_to_all_device(nullptr, {0, 0}, nullptr, {0}, nullptr);
            }),
            code(ErrorCode::kInvalidArgument));
  EXPECT_EQ(code_of([&] { t->all_to_all_device(nullptr, {4}, nullptr, {8}, nullptr); }),
            code(ErrorCode::kInvalidArgument));
  t->barrier();  // still usable
}

// Rows of CUDA backend tensors (what expert parallelism's dispatch and combine move): moves_rows says so,
// rows arrive intact, empty exchanges work, and a host tensor is refused.
TEST(NcclTransport, OneRankRowsOfBackendTensors) {
  NEED_DEVICES(1);
  auto t = make_nccl_transport({});
  EXPECT_TRUE(t->moves_rows(DeviceKind::kCuda));
  EXPECT_FALSE(t->moves_rows(DeviceKind::kCpu));
  auto b = make_cuda_backend(t->device());
  for (DType dt : {DType::kF32, DType::kBF16})  // bf16 activations travel as bf16 (2-byte rows)
    for (int64_t rows : {int64_t{37}, int64_t{0}, int64_t{1}}) {
      const int64_t cols = 96;
      std::vector<float> host(static_cast<size_t>(rows * cols));
      for (size_t i = 0; i < host.size(); ++i)
        host[i] = static_cast<float>(i % 64) * 0.25f - 8.0f;  // bf16-exact
      Tensor send, recv;
      if (rows) {
        send = b->empty(dt, rows, cols);
        recv = b->empty(dt, rows, cols);
        b->copy_from_host(host.data(), send);  // queued on the backend's stream, before the exchange
      }
      t->all_to_all_rows(*b, send, {rows}, recv, {rows}, rows % 2 ? b->queue_point() : nullptr);
      std::vector<float> got(host.size());
      if (rows) b->copy_to_host(recv, got.data());
      EXPECT_EQ(got, host) << rows << " rows of " << dtype_name(dt);
    }
  auto cpu = make_cpu_backend(1);
  Tensor h = cpu->empty(DType::kF32, 2, 4);
  EXPECT_EQ(code_of([&] { t->all_to_all_rows(*b, h, {2}, h, {2}, nullptr); }), code(ErrorCode::kInternal));
  t->barrier();  // still usable
}

// Two ranks in threads: host all-to-all, all-reduce, barrier and the device all-to-all.
void two_rank_rounds(NcclTransport& t) {
  const int n = t.size(), me = t.rank();
  for (int round = 0; round < 3; ++round) {
    std::vector<Bytes> send(n), recv;
    for (int p = 0; p < n; ++p) send[p] = pattern((me * 7 + p * 3 + round) % 5 * 1000, 100 * me + p + round);
    t.all_to_all(send, recv);
    ASSERT_EQ(static_cast<int>(recv.size()), n);
    for (int s = 0; s < n; ++s)
      EXPECT_EQ(recv[s], pattern((s * 7 + me * 3 + round) % 5 * 1000, 100 * s + me + round)) << "from " << s;
  }
  std::vector<int64_t> vi{me + 1, 10};
  t.all_reduce_sum(vi.data(), vi.size());
  EXPECT_EQ(vi, (std::vector<int64_t>{3, 20}));
  std::vector<double> vd{0.1 * (me + 1)};
  t.all_reduce_sum(vd.data(), vd.size());
  EXPECT_EQ(vd[0], 0.1 + 0.2);  // ascending rank order: the same bits on both ranks
  t.barrier();
  device_round(t, {{1000, 70000}, {3, 0}});
  t.barrier();
}

TEST(NcclTransport, TwoRanksByIdFile) {
  NEED_DEVICES(2);
  const std::string id = temp_path("id");
  auto err = run_ranks(2, [&](int r) {
    NcclOptions o;
    o.rank = r;
    o.size = 2;
    o.id_file = id;
    o.timeout = milliseconds(60000);
    auto t = make_nccl_transport(o);
    EXPECT_EQ(t->device(), r);
    two_rank_rounds(*t);
  });
  for (auto& e : err) EXPECT_EQ(e, "");
  EXPECT_NE(std::remove(id.c_str()), 0) << "rank 0 removes the id file once the group is up";
}

TEST(NcclTransport, TwoRanksByInProcessBootstrap) {
  NEED_DEVICES(2);
  auto boot = make_in_process_group(2);
  auto err = run_ranks(2, [&](int r) {
    NcclOptions o;
    o.rank = r;
    o.size = 2;
    o.bootstrap = boot[r];
    auto t = make_nccl_transport(o);
    two_rank_rounds(*t);
  });
  for (auto& e : err) EXPECT_EQ(e, "");
}

TEST(NcclTransport, TwoRanksTimeOutThenThePeerIsCancelled) {
  NEED_DEVICES(2);
  const std::string id = temp_path("id");
  std::atomic<bool> timed_out{false};
  std::vector<int> codes(2);
  std::vector<std::string> msgs(2);
  auto err = run_ranks(2, [&](int r) {
    NcclOptions o;
    o.rank = r;
    o.size = 2;
    o.id_file = id;
    o.timeout = milliseconds(r == 0 ? 500 : 20000);
    auto t = make_nccl_transport(o);
    t->barrier();
    if (r == 0) {
      codes[0] = code_of([&] { t->barrier(); }, &msgs[0]);  // rank 1 is not there
      timed_out = true;
    } else {
      while (!timed_out) std::this_thread::sleep_for(milliseconds(5));
      codes[1] = code_of([&] { t->barrier(); }, &msgs[1]);  // sees rank 0's notice
    }
  });
  for (auto& e : err) EXPECT_EQ(e, "");
  EXPECT_EQ(codes[0], code(ErrorCode::kTimeout)) << msgs[0];
  EXPECT_EQ(codes[1], code(ErrorCode::kCancelled)) << msgs[1];
  EXPECT_NE(msgs[1].find("timed out"), std::string::npos) << msgs[1];
  std::remove((id + ".abort").c_str());
}

}  // namespace
}  // namespace moert::ep
