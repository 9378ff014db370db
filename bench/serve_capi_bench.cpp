// The baseline for bench/serve_bench.sh: the same workload as its HTTP clients, straight through moert.h.
// C client threads, each running R requests one after another (a prompt, greedy, max_tokens tokens,
// ignore_eos); prints requests/s and the mean time to the first token as one JSON line.
// usage: moert_serve_capi_bench MODEL_DIR CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS [THREADS]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "moert/moert.h"

namespace {

const char* const kPrompts[] = {"def quicksort(xs):\n",    "import numpy as np\n\n",  "class Node:\n",
                                "for i in range(10):\n",   "# parse the arguments\n", "def main():\n    ",
                                "with open(path) as f:\n", "try:\n    import json\n"};

void check(moert_status st, const char* what) {
  if (st == MOERT_OK) return;
  std::fprintf(stderr, "%s: %s\n", what, moert_last_error());
  std::exit(1);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL_DIR CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS [THREADS]\n", argv[0]);
    return 2;
  }
  const int clients = std::atoi(argv[2]), per_client = std::atoi(argv[3]), max_tokens = std::atoi(argv[4]);
  moert_options* load = nullptr;
  check(moert_options_create(&load), "options");
  if (argc > 5) check(moert_options_set_int(load, "threads", std::atoi(argv[5])), "threads");
  check(moert_options_set_int(load, "max_batch", 32), "max_batch");
  moert_model* m = nullptr;
  check(moert_model_load(argv[1], load, nullptr, nullptr, &m), "load");
  moert_options_free(load);
  std::atomic<int64_t> ttft_us{0}, done{0};
  const double t0 = now_s();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      for (int r = 0; r < per_client; ++r) {
        moert_options* g = nullptr;
        check(moert_options_create(&g), "options");
        check(moert_options_set_int(g, "max_tokens", max_tokens), "max_tokens");
        check(moert_options_set_float(g, "temperature", 0), "temperature");
        check(moert_options_set_int(g, "ignore_eos", 1), "ignore_eos");
        const double start = now_s();
        moert_stream* s = nullptr;
        check(moert_generate_text(m, kPrompts[(c + r) % 8], g, &s), "generate");
        moert_options_free(g);
        bool first = true;
        char buf[512];
        size_t need = 0;
        for (;;) {
          int32_t tok = 0, fin = 0;
          check(moert_stream_next(s, -1, &tok, &fin), "next");
          moert_stream_text(s, buf, sizeof buf, &need);  // as the server reads each piece
          if (first && tok >= 0) {
            ttft_us += static_cast<int64_t>((now_s() - start) * 1e6);
            first = false;
          }
          if (fin != MOERT_FINISH_NONE) break;
        }
        moert_stream_free(s);
        ++done;
      }
    });
  for (auto& t : threads) t.join();
  const double wall = now_s() - t0;
  std::printf("{\"clients\": %d, \"requests\": %lld, \"wall_s\": %.3f, \"rps\": %.2f, \"ttft_ms\": %.2f}\n",
              clients, static_cast<long long>(done.load()), wall, done.load() / wall,
              ttft_us.load() / 1e3 / done.load());
  moert_model_free(m);
  return 0;
}
