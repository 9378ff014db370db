// moert run: complete a prompt, streaming text to stdout; moert chat: an interactive chat with history.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {
namespace {

int32_t progress_bar(void*, double fraction, const char* stage) {
  const int width = 30, filled = static_cast<int>(fraction * width + 0.5);
  std::fprintf(stderr, "\rloading [%s%s] %3d%% %-12s", std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<int>(fraction * 100 + 0.5), stage);
  if (fraction >= 1.0) std::fprintf(stderr, "\n");
  std::fflush(stderr);
  return 0;
}

moert_model* load_model(const Args& a) {
  const std::string dir = a.get("model", default_model_dir());
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  if (a.has("threads")) check(moert_options_set_int(o, "threads", a.get_int("threads", 0)), "--threads");
  if (a.has("batch-invariant")) check(moert_options_set_int(o, "batch_invariant", 1), "--batch-invariant");
  if (a.has("activations"))
    check(moert_options_set_string(o, "activations", a.get("activations").c_str()), "--activations");
  if (a.has("device")) check(moert_options_set_string(o, "device", a.get("device").c_str()), "--device");
  // Expert parallelism: one rank per process under `mpirun -np N ... --ep-size N`.
  const long long ep_size = a.get_int("ep-size", 1);
  if (a.has("ep-size")) check(moert_options_set_int(o, "ep_size", ep_size), "--ep-size");
  if (a.has("ep-transport"))
    check(moert_options_set_string(o, "ep_transport", a.get("ep-transport").c_str()), "--ep-transport");
  if (a.has("ep-redundant"))
    check(moert_options_set_int(o, "ep_redundant", a.get_int("ep-redundant", 0)), "--ep-redundant");
  if (a.has("eplb-interval"))
    check(moert_options_set_int(o, "eplb_interval", a.get_int("eplb-interval", 0)), "--eplb-interval");
  if (a.has("no-ep-overlap")) check(moert_options_set_int(o, "ep_overlap", 0), "--no-ep-overlap");
  if (a.has("ep-overlap")) check(moert_options_set_int(o, "ep_overlap", 1), "--ep-overlap");
  if (a.has("ep-max-ranks"))
    check(moert_options_set_int(o, "ep_max_ranks_per_token", a.get_int("ep-max-ranks", 0)), "--ep-max-ranks");
  moert_model* m = nullptr;
  const bool quiet = a.has("quiet") || ep_size > 1;  // one progress bar per rank would interleave
  check(moert_model_load(dir.c_str(), o, quiet ? nullptr : progress_bar, nullptr, &m), "loading the model");
  moert_options_free(o);
  return m;
}

int64_t ep_rank(moert_model* m) {
  int64_t r = 0;
  check(moert_model_info_int(m, "ep_rank", &r), "ep_rank");
  return r;
}

moert_options* generation_options(const Args& a) {
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  check(moert_options_set_int(o, "max_tokens", a.get_int("max-tokens", 256)), "--max-tokens");
  if (a.has("temperature"))
    check(moert_options_set_float(o, "temperature", std::stod(a.get("temperature"))), "--temperature");
  if (a.has("top-k")) check(moert_options_set_int(o, "top_k", a.get_int("top-k", 0)), "--top-k");
  if (a.has("top-p")) check(moert_options_set_float(o, "top_p", std::stod(a.get("top-p"))), "--top-p");
  if (a.has("min-p")) check(moert_options_set_float(o, "min_p", std::stod(a.get("min-p"))), "--min-p");
  if (a.has("seed")) check(moert_options_set_int(o, "seed", a.get_int("seed", 0)), "--seed");
  if (a.has("stop")) check(moert_options_add_string(o, "stop", a.get("stop").c_str()), "--stop");
  if (a.has("ignore-eos")) check(moert_options_set_int(o, "ignore_eos", 1), "--ignore-eos");
  return o;
}

// Streams a request's text to stdout; returns the whole text.
std::string stream_out(moert_stream* s) {
  std::string all;
  std::vector<char> buf(256);
  for (;;) {
    int32_t token = 0, finish = 0;
    check(moert_stream_next(s, -1, &token, &finish), "generation");
    size_t need = 0;
    if (moert_stream_text(s, buf.data(), buf.size(), &need) != MOERT_OK) {
      buf.resize(need);
      check(moert_stream_text(s, buf.data(), buf.size(), &need), "text");
    }
    std::fputs(buf.data(), stdout);
    std::fflush(stdout);
    all += buf.data();
    if (finish == MOERT_FINISH_ERROR) {
      check(moert_stream_error(s, nullptr, 0, &need), "error");
      std::vector<char> err(need);
      check(moert_stream_error(s, err.data(), err.size(), &need), "error");
      die(std::string("generation failed: ") + err.data());
    }
    if (finish != MOERT_FINISH_NONE) break;
  }
  return all;
}

void report(moert_stream* s, bool quiet) {
  int64_t prompt = 0, generated = 0;
  double ttft = 0, tps = 0;
  check(moert_stream_usage(s, &prompt, &generated, &ttft, &tps), "usage");
  if (!quiet)
    std::fprintf(stderr, "\n[%lld prompt tokens, %lld generated, first token after %.0f ms, %.1f tokens/s]\n",
                 static_cast<long long>(prompt), static_cast<long long>(generated), ttft * 1e3, tps);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o;
}

}  // namespace

// With expert parallelism (--ep-size N under mpirun -np N) every rank runs the same prompt (each its own
// request, the ranks stepping together) and only rank 0 prints.
int cmd_run(int argc, char** argv) {
  Args a(argc, argv, 2, {"quiet", "ignore-eos", "no-echo", "no-ep-overlap", "ep-overlap", "batch-invariant"});
  std::string prompt;
  if (a.has("prompt-file")) {
    // "-" reads stdin: prompts with trailing newlines survive (a shell's $(...) would strip them).
    const std::string path = a.get("prompt-file");
    std::ifstream f(path == "-" ? "/dev/stdin" : path, std::ios::binary);
    if (!f) die("cannot read --prompt-file " + path);
    prompt.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } else {
    prompt = a.require("prompt");
  }
  moert_model* m = load_model(a);
  const bool quiet = a.has("quiet") || ep_rank(m) != 0;
  if (ep_rank(m) != 0 && !std::freopen("/dev/null", "w", stdout)) die("cannot silence stdout");
  moert_options* g = generation_options(a);
  moert_stream* s = nullptr;
  check(moert_generate_text(m, prompt.c_str(), g, &s), "starting generation");
  moert_options_free(g);
  if (!a.has("no-echo")) std::fputs(prompt.c_str(), stdout);
  stream_out(s);
  std::fputs("\n", stdout);
  report(s, quiet);
  moert_stream_free(s);
  moert_model_free(m);
  return 0;
}

// With expert parallelism rank 0 chats (mpirun gives stdin to rank 0); the other ranks only serve their
// experts: their engines run empty steps until rank 0 frees the model.
int cmd_chat(int argc, char** argv) {
  Args a(argc, argv, 2, {"quiet", "ignore-eos", "no-ep-overlap", "ep-overlap", "batch-invariant"});
  moert_model* m = load_model(a);
  if (ep_rank(m) != 0) {
    moert_model_free(m);
    return 0;
  }
  std::vector<std::pair<std::string, std::string>> history;
  if (a.has("system")) history.emplace_back("system", a.get("system"));
  const bool tty = isatty_stdin();
  std::string line;
  for (;;) {
    if (tty) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    history.emplace_back("user", line);
    std::string json = "[";
    for (size_t i = 0; i < history.size(); ++i)
      json += std::string(i ? "," : "") + "{\"role\":\"" + history[i].first + "\",\"content\":\"" +
              json_escape(history[i].second) + "\"}";
    json += "]";
    moert_options* g = generation_options(a);
    moert_stream* s = nullptr;
    check(moert_generate_chat(m, json.c_str(), g, &s), "starting generation");
    moert_options_free(g);
    history.emplace_back("assistant", stream_out(s));
    std::fputs("\n", stdout);
    report(s, a.has("quiet") || !tty);
    moert_stream_free(s);
  }
  moert_model_free(m);
  return 0;
}

}  // namespace cli
