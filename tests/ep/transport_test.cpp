// The in-process transport: variable-size all-to-all, all-reduce, barrier; abort and time-out surface as
// Error on every rank.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "backend/backend.h"
#include "ep/transport.h"
#include "util/error.h"

namespace moert::ep {
namespace {

template <class F>
std::vector<std::string> run_ranks(int n, const std::vector<std::shared_ptr<Transport>>& t, F fn) {
  std::vector<std::string> err(n);
  std::vector<std::thread> th;
  for (int r = 0; r < n; ++r)
    th.emplace_back([&, r] {
      try {
        fn(*t[r]);
      } catch (const Error& e) {
        err[r] = std::string("Error:") + e.what();
      } catch (const std::exception& e) {
        err[r] = std::string("other:") + e.what();
      }
    });
  for (auto& x : th) x.join();
  return err;
}

TEST(InProcessTransport, AllToAllVariableSizes) {
  for (int n : {1, 2, 3, 4}) {
    auto t = make_in_process_group(n);
    auto err = run_ranks(n, t, [&](Transport& tr) {
      for (int round = 0; round < 20; ++round) {
        std::vector<Bytes> send(n), recv;
        for (int d = 0; d < n; ++d)
          send[d].assign((tr.rank() * 7 + d * 3 + round) % 11, uint8_t(tr.rank() * 16 + d));
        tr.all_to_all(send, recv);
        ASSERT_EQ(static_cast<int>(recv.size()), n);
        for (int s = 0; s < n; ++s) {
          EXPECT_EQ(recv[s].size(), size_t((s * 7 + tr.rank() * 3 + round) % 11));
          for (uint8_t v : recv[s]) EXPECT_EQ(v, uint8_t(s * 16 + tr.rank()));
        }
      }
    });
    for (auto& e : err) EXPECT_EQ(e, "");
  }
}

// Rows of CPU backend tensors between the ranks: rank s sends (s + 2 d + round) % 4 rows to rank d, each
// value naming (source, destination, row, column); empty sends and receives included.
TEST(InProcessTransport, AllToAllRowsMovesTensorRows) {
  const int64_t cols = 5;
  auto count = [](int s, int d, int round) { return static_cast<int64_t>((s + 2 * d + round) % 4); };
  for (int n : {1, 2, 3}) {
    auto t = make_in_process_group(n);
    auto err = run_ranks(n, t, [&](Transport& tr) {
      ASSERT_TRUE(tr.moves_rows(DeviceKind::kCpu));
      EXPECT_FALSE(tr.moves_rows(DeviceKind::kCuda));
      auto b = make_cpu_backend(1);
      const int me = tr.rank();
      for (int round = 0; round < 6; ++round) {
        std::vector<int64_t> ns(n), nr(n);
        std::vector<float> host;
        for (int d = 0; d < n; ++d) {
          ns[d] = count(me, d, round);
          nr[d] = count(d, me, round);
          for (int64_t i = 0; i < ns[d]; ++i)
            for (int64_t c = 0; c < cols; ++c) host.push_back(float(me * 1000 + d * 100 + i * 10 + c));
        }
        int64_t S = 0, Rn = 0;
        for (int d = 0; d < n; ++d) S += ns[d], Rn += nr[d];
        Tensor send, recv;
        if (S) {
          send = b->empty(DType::kF32, S, cols);
          b->copy_from_host(host.data(), send);
        }
        if (Rn) recv = b->empty(DType::kF32, Rn, cols);
        tr.all_to_all_rows(*b, send, ns, recv, nr, nullptr);
        std::vector<float> got(static_cast<size_t>(Rn * cols));
        if (Rn) b->copy_to_host(recv, got.data());
        size_t at = 0;
        for (int s = 0; s < n; ++s)
          for (int64_t i = 0; i < nr[s]; ++i)
            for (int64_t c = 0; c < cols; ++c)
              EXPECT_EQ(got[at++], float(s * 1000 + me * 100 + i * 10 + c)) << "from " << s << " row " << i;
      }
    });
    for (auto& e : err) EXPECT_EQ(e, "");
  }
}

// A receiver expecting other counts than its sender sends fails the whole group (it throws, the others'
// next collective does), and a group whose rows go
// in messages (as MPI's) does not move tensors.
TEST(InProcessTransport, AllToAllRowsCountMismatchFailsTheGroup) {
  auto t = make_in_process_group(2, {std::chrono::milliseconds(5000), {}});
  auto err = run_ranks(2, t, [&](Transport& tr) {
    auto b = make_cpu_backend(1);
    const int64_t from0 = tr.rank() == 0 ? 2 : 1;  // rank 0 sends itself 1 row
    Tensor send = b->empty(DType::kF32, 2, 3), recv = b->empty(DType::kF32, from0 + 1, 3);
    b->fill_zero(send);
    tr.all_to_all_rows(*b, send, {1, 1}, recv, {from0, 1}, nullptr);
    tr.barrier();  // rank 1 may have collected before rank 0 failed: its next collective fails
  });
  for (auto& e : err) EXPECT_NE(e.find("Error:"), std::string::npos) << e;
  EXPECT_NE((err[0] + err[1]).find("expects 2 rows"), std::string::npos) << err[0] << " / " << err[1];

  InProcessOptions io;
  io.rows_in_messages = true;
  auto m = make_in_process_group(1, io);
  EXPECT_FALSE(m[0]->moves_rows(DeviceKind::kCpu));
  auto b = make_cpu_backend(1);
  Tensor x;
  try {
    m[0]->all_to_all_rows(*b, x, {0}, x, {0}, nullptr);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

TEST(InProcessTransport, AllReduceAndBarrier) {
  const int n = 4;
  auto t = make_in_process_group(n);
  auto err = run_ranks(n, t, [&](Transport& tr) {
    for (int round = 0; round < 10; ++round) {
      std::vector<int64_t> v{tr.rank(), 1, round};
      tr.all_reduce_sum(v.data(), v.size());
      EXPECT_EQ(v[0], 6);
      EXPECT_EQ(v[1], 4);
      EXPECT_EQ(v[2], 4 * round);
      double d = 0.5 * tr.rank();
      tr.all_reduce_sum(&d, 1);
      EXPECT_EQ(d, 3.0);
      tr.barrier();
    }
  });
  for (auto& e : err) EXPECT_EQ(e, "");
}

TEST(InProcessTransport, ARankThatFailsFailsEveryRank) {
  const int n = 4;
  auto t = make_in_process_group(n, {std::chrono::milliseconds(20000), {}});
  const auto t0 = std::chrono::steady_clock::now();
  auto err = run_ranks(n, t, [&](Transport& tr) {
    run_collective(tr, [&] {
      tr.barrier();
      if (tr.rank() == 2) throw Error(ErrorCode::kInvalidArgument, "bad input on rank 2");
      std::vector<Bytes> send(n), recv;
      tr.all_to_all(send, recv);
    });
  });
  for (int r = 0; r < n; ++r) {
    EXPECT_NE(err[r].find("Error:"), std::string::npos) << r;
    EXPECT_NE(err[r].find("rank 2"), std::string::npos) << err[r];
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // no wait for the time-out
  // The group stays failed.
  std::vector<Bytes> send(n), recv;
  EXPECT_THROW(t[0]->all_to_all(send, recv), Error);
}

TEST(InProcessTransport, ASilentRankTimesOut) {
  const int n = 3;
  auto t = make_in_process_group(n, {std::chrono::milliseconds(300), {}});
  auto err = run_ranks(n, t, [&](Transport& tr) {
    if (tr.rank() == 1) return;  // never takes part
    tr.barrier();
  });
  EXPECT_NE(err[0].find("Error:"), std::string::npos);
  EXPECT_NE(err[2].find("Error:"), std::string::npos);
  EXPECT_NE(err[0].find("timed out"), std::string::npos) << err[0];
}

TEST(InProcessTransport, MismatchedCollectivesFail) {
  auto t = make_in_process_group(2, {std::chrono::milliseconds(2000), {}});
  auto err = run_ranks(2, t, [&](Transport& tr) {
    if (tr.rank() == 0) {
      tr.barrier();
    } else {
      int64_t v = 1;
      tr.all_reduce_sum(&v, 1);
    }
  });
  EXPECT_NE(err[0], "");
  EXPECT_NE(err[1], "");
}

TEST(InProcessTransport, InjectedDelay) {
  auto t = make_in_process_group(2, {std::chrono::milliseconds(5000), std::chrono::microseconds(20000)});
  const auto t0 = std::chrono::steady_clock::now();
  run_ranks(2, t, [&](Transport& tr) {
    std::vector<Bytes> send(2), recv;
    for (int i = 0; i < 3; ++i) tr.all_to_all(send, recv);
  });
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(60));
}

}  // namespace
}  // namespace moert::ep
