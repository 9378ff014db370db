// moert run: complete a prompt, streaming text to stdout; moert chat: an interactive chat with history.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {
namespace {

// Options both commands share: the model, how it loads, and how it samples.
std::vector<Opt> common_opts() {
  return {{"model", true, {"-m"}},
          {"threads", true, {"-t"}},
          {"device"},
          {"activations"},
          {"batch-invariant", false},
          {"no-weight-check", false},
          {"speculative"},
          {"draft-tokens"},
          {"no-prefix-cache", false},
          {"ep-size"},
          {"ep-transport"},
          {"ep-redundant"},
          {"eplb-interval"},
          {"ep-overlap", false},
          {"no-ep-overlap", false},
          {"ep-max-ranks"},
          {"max-tokens", true, {"-n", "--n-predict"}},
          {"temperature", true, {"--temp"}},
          {"top-k"},
          {"top-p"},
          {"min-p"},
          {"repetition-penalty", true, {"--repeat-penalty"}},
          {"presence-penalty"},
          {"frequency-penalty"},
          {"seed", true, {"-s"}},
          {"stop"},
          {"ignore-eos", false},
          {"quiet", false}};
}

const char kCommonUsage[] =
    "  -m, --model DIR            checkpoint directory (default: the shipped moert-tiny-coder)\n"
    "  -n, --max-tokens N         tokens to generate at most (default 256)\n"
    "  --temperature, --temp T    0 = greedy; default: the checkpoint's generation_config.json, else 0\n"
    "  --top-k K, --top-p P, --min-p P   sampling filters (default: generation_config.json, else off)\n"
    "  --repetition-penalty, --repeat-penalty R   1 = off;  --presence-penalty P, --frequency-penalty F   0 "
    "= off\n"
    "  -s, --seed S               sampling seed (default: a fresh one, printed on stderr)\n"
    "  --stop STR                 end before STR (repeatable)\n"
    "  --ignore-eos               keep going past the end-of-sequence token\n"
    "  -t, --threads N            CPU threads (default: all cores)\n"
    "  --device cpu|cuda, --activations fp32|fp8, --batch-invariant\n"
    "  --no-weight-check          skip the load-time scan for NaN/Inf weights\n"
    "  --speculative auto|on|off  MTP speculative decoding when the checkpoint has the module: on, off, or\n"
    "                             auto (the default: on with --device cuda, off on the cpu, where it is "
    "slower)\n"
    "  --draft-tokens N           drafts per step with speculation, 1-3 (default 1)\n"
    "  --no-prefix-cache          do not reuse the KV pages of earlier prompts' shared prefixes\n"
    "  --ep-size N [--ep-transport T] [--ep-redundant R] [--eplb-interval STEPS] [--ep-max-ranks M]\n"
    "              [--ep-overlap|--no-ep-overlap]   experts over N processes (run under mpirun -np N)\n"
    "  --quiet                    no progress bar or usage line\n"
    "  -h, --help                 this help\n";

Command run_command() {
  Command c{
      "run",
      std::string("usage: moert run [options] -p TEXT | --prompt-file FILE|- | --resume FILE\n"
                  "Stream a completion of the prompt to stdout.\n\n"
                  "  -p, --prompt TEXT          the prompt\n"
                  "  -f, --prompt-file FILE     the prompt from a file (- = stdin)\n"
                  "  --resume FILE              continue a sequence `moert prefill` wrote (prints only the\n"
                  "                             continuation; the same model must be loaded)\n"
                  "  --no-echo                  do not print the prompt first\n") +
          kCommonUsage,
      common_opts()};
  c.opts.push_back({"prompt", true, {"-p"}});
  c.opts.push_back({"prompt-file", true, {"-f", "--file"}});
  c.opts.push_back({"no-echo", false});
  c.opts.push_back({"resume"});
  return c;
}

Command chat_command() {
  Command c{"chat",
            std::string("usage: moert chat [options]\n"
                        "Chat with the model's chat template, one user message per line on stdin.\n"
                        "Ctrl-C during a reply cancels that reply; Ctrl-C or Ctrl-D at the prompt (or /exit) "
                        "quits.\n\n"
                        "  --system TEXT              a system message first\n") +
                kCommonUsage,
            common_opts()};
  c.opts.push_back({"system"});
  return c;
}

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
  if (a.has("no-weight-check")) check(moert_options_set_int(o, "check_weights", 0), "--no-weight-check");
  if (a.has("speculative"))
    check(moert_options_set_string(o, "speculative", a.get("speculative").c_str()), "--speculative");
  if (a.has("draft-tokens"))
    check(moert_options_set_int(o, "draft_tokens", a.get_int("draft-tokens", 1)), "--draft-tokens");
  if (a.has("no-prefix-cache")) check(moert_options_set_int(o, "prefix_cache", 0), "--no-prefix-cache");
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

// Unset keys stay unset, so the C API applies the checkpoint's generation_config.json.
moert_options* generation_options(const Args& a) {
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  check(moert_options_set_int(o, "max_tokens", a.get_int("max-tokens", 256)), "--max-tokens");
  const std::pair<const char*, const char*> numbers[] = {{"temperature", "temperature"},
                                                         {"top-p", "top_p"},
                                                         {"min-p", "min_p"},
                                                         {"repetition-penalty", "repetition_penalty"},
                                                         {"presence-penalty", "presence_penalty"},
                                                         {"frequency-penalty", "frequency_penalty"}};
  for (auto [flag, key] : numbers)
    if (a.has(flag))
      check(moert_options_set_float(o, key, a.get_double(flag, 0)), (std::string("--") + flag).c_str());
  if (a.has("top-k")) check(moert_options_set_int(o, "top_k", a.get_int("top-k", 0)), "--top-k");
  if (a.has("seed")) check(moert_options_set_int(o, "seed", a.get_int("seed", 0)), "--seed");
  for (const std::string& s : a.get_all("stop"))
    check(moert_options_add_string(o, "stop", s.c_str()), "--stop");
  if (a.has("ignore-eos")) check(moert_options_set_int(o, "ignore_eos", 1), "--ignore-eos");
  return o;
}

// SIGINT in chat: during a reply it sets g_interrupted, which cancels the reply; at the prompt (waiting
// for a line) it ends the program at once, so no Ctrl-C can slip in between a check and a blocking read.
volatile std::sig_atomic_t g_interrupted = 0, g_at_prompt = 0;
void on_sigint(int) {
  if (g_at_prompt) {
    const char nl = '\n';
    (void)!::write(2, &nl, 1);
    ::_exit(0);
  }
  g_interrupted = 1;
}

enum class Streamed { kFinished, kCancelled };

// Streams a request's text to stdout into *all. With `interruptible`, a SIGINT cancels the request.
Streamed stream_out(moert_stream* s, std::string* all, bool interruptible) {
  std::vector<char> buf(256);
  bool cancelled = false;
  for (;;) {
    int32_t token = 0, finish = 0;
    // Short waits so a Ctrl-C is seen while the model is busy.
    const int st = moert_stream_next(s, interruptible ? 100 : -1, &token, &finish);
    if (st == MOERT_ERR_TIMEOUT) {
      if (g_interrupted && !cancelled) {
        check(moert_stream_cancel(s), "cancel");
        cancelled = true;
      }
      continue;
    }
    check(st, "generation");
    size_t need = 0;
    if (moert_stream_text(s, buf.data(), buf.size(), &need) != MOERT_OK) {
      buf.resize(need);
      check(moert_stream_text(s, buf.data(), buf.size(), &need), "text");
    }
    std::fputs(buf.data(), stdout);
    std::fflush(stdout);
    *all += buf.data();
    if (finish == MOERT_FINISH_ERROR) {
      check(moert_stream_error(s, nullptr, 0, &need), "error");
      std::vector<char> err(need);
      check(moert_stream_error(s, err.data(), err.size(), &need), "error");
      die(std::string("generation failed: ") + err.data());
    }
    if (interruptible && g_interrupted && !cancelled && finish == MOERT_FINISH_NONE) {
      check(moert_stream_cancel(s), "cancel");
      cancelled = true;
    }
    if (finish == MOERT_FINISH_CANCELLED) return Streamed::kCancelled;
    if (finish != MOERT_FINISH_NONE) return Streamed::kFinished;
  }
}

void report(moert_stream* s, bool quiet) {
  int64_t prompt = 0, generated = 0, seed = 0, sampled = 0;
  double ttft = 0, tps = 0;
  check(moert_stream_usage(s, &prompt, &generated, &ttft, &tps), "usage");
  check(moert_stream_info_int(s, "sampled", &sampled), "stream info");
  check(moert_stream_info_int(s, "seed", &seed), "stream info");
  if (quiet) return;
  std::fprintf(stderr, "\n[%lld prompt tokens, %lld generated, first token after %.0f ms, %.1f tokens/s",
               static_cast<long long>(prompt), static_cast<long long>(generated), ttft * 1e3, tps);
  // The seed a sampled run drew, so the same run can be repeated with --seed.
  if (sampled) std::fprintf(stderr, ", seed %lld", static_cast<long long>(seed));
  int64_t drafted = 0, accepted = 0, forwards = 0, cached = 0;
  check(moert_stream_counter(s, "draft_tokens", &drafted), "stream counter");
  check(moert_stream_counter(s, "accepted_drafts", &accepted), "stream counter");
  check(moert_stream_counter(s, "decode_forwards", &forwards), "stream counter");
  check(moert_stream_counter(s, "cached_prompt_tokens", &cached), "stream counter");
  if (cached > 0) std::fprintf(stderr, ", %lld prompt tokens cached", static_cast<long long>(cached));
  // Speculation: how many drafts the main model kept, and tokens per main-model forward after the prompt.
  if (drafted > 0)
    std::fprintf(stderr, ", speculative: %lld of %lld drafts accepted (%.0f%%), %.2f tokens per forward",
                 static_cast<long long>(accepted), static_cast<long long>(drafted),
                 100.0 * accepted / drafted,
                 forwards > 0 ? static_cast<double>(generated - 1) / forwards : 0.0);
  std::fprintf(stderr, "]\n");
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

std::string read_file(const std::string& path, const char* flag) {
  // "-" reads stdin: prompts with trailing newlines survive (a shell's $(...) would strip them).
  std::ifstream f(path == "-" ? "/dev/stdin" : path, std::ios::binary);
  if (!f) die(std::string("cannot read ") + flag + " " + path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// moert run --resume FILE: the continuation of a sequence another process prefilled.
int run_resumed(const Args& a) {
  if (a.has("prompt") || a.has("prompt-file")) die("--resume continues a saved sequence: give no prompt");
  const std::string image = read_file(a.get("resume"), "--resume");
  moert_options* g = generation_options(a);
  moert_model* m = load_model(a);
  // With expert parallelism every rank resumes the same image (as cmd_run's ranks run the same prompt) and
  // only rank 0 prints.
  const bool quiet = a.has("quiet") || ep_rank(m) != 0;
  if (ep_rank(m) != 0 && !std::freopen("/dev/null", "w", stdout)) die("cannot silence stdout");
  moert_stream* s = nullptr;
  check(moert_generate_resume(m, image.data(), image.size(), g, &s), "--resume");
  moert_options_free(g);
  std::string text;
  stream_out(s, &text, /*interruptible=*/false);
  std::fputs("\n", stdout);
  report(s, quiet);
  moert_stream_free(s);
  moert_model_free(m);
  return 0;
}

}  // namespace

// moert prefill: the prompt's KV cache (and its last logits) computed and written to a file that
// `moert run --resume` continues from, in another process (prefill/decode separation).
int cmd_prefill(int argc, char** argv) {
  Command cmd{
      "prefill",
      std::string("usage: moert prefill [options] -p TEXT | --prompt-file FILE|- --out FILE\n"
                  "Compute the prompt's KV cache and write it (with the last token's logits) to FILE;\n"
                  "`moert run --resume FILE` continues it.\n\n"
                  "  -p, --prompt TEXT          the prompt\n"
                  "  -f, --prompt-file FILE     the prompt from a file (- = stdin)\n"
                  "  -o, --out FILE             where the KV image goes\n") +
          kCommonUsage,
      common_opts()};
  cmd.opts.push_back({"prompt", true, {"-p"}});
  cmd.opts.push_back({"prompt-file", true, {"-f", "--file"}});
  cmd.opts.push_back({"out", true, {"-o"}});
  Args a(argc, argv, 2, cmd);
  const std::string prompt =
      a.has("prompt-file") ? read_file(a.get("prompt-file"), "--prompt-file") : a.require("prompt");
  const std::string out = a.require("out");
  moert_model* m = load_model(a);
  moert_tokenizer* t = nullptr;
  check(moert_model_tokenizer(m, &t), "the model's tokenizer");
  size_t n = 0;
  check(moert_tokenize(t, prompt.data(), prompt.size(), -1, 1, nullptr, 0, &n), "tokenizing");
  std::vector<int32_t> ids(n);
  check(moert_tokenize(t, prompt.data(), prompt.size(), -1, 1, ids.data(), ids.size(), &n), "tokenizing");
  moert_tokenizer_free(t);
  int64_t vocab = 0;
  check(moert_model_info_int(m, "vocab_size", &vocab), "model info");
  moert_session* s = nullptr;
  check(moert_session_create(m, &s), "session");
  std::vector<float> logits(static_cast<size_t>(vocab));
  check(moert_session_eval(s, ids.data(), ids.size(), 0, logits.data(), logits.size()), "prefill");
  size_t bytes = 0;
  check(moert_session_export(s, nullptr, 0, &bytes), "export");
  std::vector<char> image(bytes);
  check(moert_session_export(s, image.data(), image.size(), &bytes), "export");
  std::ofstream f(out, std::ios::binary);
  if (!f.write(image.data(), static_cast<std::streamsize>(image.size())) || !f.flush())
    die("cannot write --out " + out);
  if (!a.has("quiet"))
    std::fprintf(stderr, "[%zu prompt tokens prefilled: %zu bytes written to %s]\n", ids.size(), image.size(),
                 out.c_str());
  moert_session_free(s);
  moert_model_free(m);
  return 0;
}

// With expert parallelism (--ep-size N under mpirun -np N) every rank runs the same prompt (each its own
// request, the ranks stepping together) and only rank 0 prints.
int cmd_run(int argc, char** argv) {
  const Command cmd = run_command();
  Args a(argc, argv, 2, cmd);
  if (a.has("resume")) return run_resumed(a);
  std::string prompt;
  if (a.has("prompt-file")) {
    prompt = read_file(a.get("prompt-file"), "--prompt-file");
  } else {
    prompt = a.require("prompt");
  }
  moert_options* g = generation_options(a);  // argument errors before the (slow) load
  moert_model* m = load_model(a);
  const bool quiet = a.has("quiet") || ep_rank(m) != 0;
  if (ep_rank(m) != 0 && !std::freopen("/dev/null", "w", stdout)) die("cannot silence stdout");
  moert_stream* s = nullptr;
  check(moert_generate_text(m, prompt.c_str(), g, &s), "starting generation");
  moert_options_free(g);
  if (!a.has("no-echo")) std::fputs(prompt.c_str(), stdout);
  std::string text;
  stream_out(s, &text, /*interruptible=*/false);
  std::fputs("\n", stdout);
  report(s, quiet);
  moert_stream_free(s);
  moert_model_free(m);
  return 0;
}

// With expert parallelism rank 0 chats (mpirun gives stdin to rank 0); the other ranks only serve their
// experts: their engines run empty steps until rank 0 frees the model.
int cmd_chat(int argc, char** argv) {
  const Command cmd = chat_command();
  Args a(argc, argv, 2, cmd);
  moert_options_free(generation_options(a));  // argument errors before the (slow) load
  moert_model* m = load_model(a);
  if (ep_rank(m) != 0) {
    moert_model_free(m);
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  std::vector<std::pair<std::string, std::string>> history;
  if (a.has("system")) history.emplace_back("system", a.get("system"));
  const bool tty = isatty_stdin();
  std::string line;
  for (;;) {
    if (tty) std::fprintf(stderr, "> ");
    g_at_prompt = 1;
    if (g_interrupted) break;  // Ctrl-C after the last reply ended: as if at the prompt
    const bool got = static_cast<bool>(std::getline(std::cin, line));
    g_at_prompt = 0;
    if (!got) break;  // Ctrl-D
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
    std::string reply;
    const Streamed how = stream_out(s, &reply, /*interruptible=*/true);
    g_interrupted = 0;  // that Ctrl-C was for this reply
    // A cancelled reply stays in the history as far as it went, as the user saw it.
    history.emplace_back("assistant", reply);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (how == Streamed::kCancelled) std::fprintf(stderr, "[reply cancelled]\n");
    report(s, a.has("quiet") || !tty);
    moert_stream_free(s);
  }
  if (tty) std::fprintf(stderr, "\n");
  moert_model_free(m);
  return 0;
}

}  // namespace cli
