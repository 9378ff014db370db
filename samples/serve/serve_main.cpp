// moert-serve (also `moert serve`): an OpenAI-compatible HTTP server over moert.h. Loads one model and
// serves /v1/chat/completions, /v1/completions, /v1/models and /health on 127.0.0.1 unless told otherwise.
// SIGINT/SIGTERM: no new requests, in-flight streams get --shutdown-timeout seconds to finish and are
// then cancelled; exit status 0.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>

#include "../cli/args.h"
#include "moert/moert.h"
#include "serve_http.h"
#include "serve_model.h"

namespace {

const char kUsage[] =
    "usage: moert serve [options]\n"
    "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions (streamed or not),\n"
    "GET /v1/models, /health.\n\n"
    "  -m, --model DIR            checkpoint directory (default: the shipped moert-tiny-coder)\n"
    "  --alias NAME               the model id clients send (default: the folder's name)\n"
    "  --host ADDR                address to listen on (default 127.0.0.1)\n"
    "  --port N                   port (default 8080; 0 = a free one, printed)\n"
    "  --api-key KEY              require 'Authorization: Bearer KEY' on /v1/ (default: $MOERT_API_KEY)\n"
    "  --max-streams N            streams in flight at once (a request holds one per choice, n);\n"
    "                             more get 503 (default 128)\n"
    "  --max-body-bytes N         larger request bodies get 413 (default 8 MiB)\n"
    "  --shutdown-timeout S       seconds in-flight requests get to finish at SIGINT/SIGTERM (default 10)\n"
    "  -t, --threads N            CPU threads (default: all cores)\n"
    "  --kv-cache-bytes N         KV-cache budget shared by all requests (default 256 MiB)\n"
    "  --max-batch N              sequences decoded together (default 16)\n"
    "  --device cpu|cuda, --activations fp32|fp8\n"
    "  --batch-invariant          a request's tokens do not depend on what it is batched with\n"
    "  --no-weight-check          skip the load-time scan for NaN/Inf weights\n"
    "  --log                      one line per request on stderr\n"
    "  -h, --help                 this help\n";

cli::Command serve_command() {
  return {"serve",
          kUsage,
          {{"model", true, {"-m"}},
           {"alias"},
           {"host"},
           {"port"},
           {"api-key"},
           {"max-streams"},
           {"max-body-bytes"},
           {"shutdown-timeout"},
           {"threads", true, {"-t"}},
           {"kv-cache-bytes"},
           {"max-batch"},
           {"device"},
           {"activations"},
           {"batch-invariant", false},
           {"no-weight-check", false},
           {"log", false}}};
}

moert_model* load(const cli::Args& a, const std::string& dir) {
  moert_options* o = nullptr;
  cli::check(moert_options_create(&o), "options");
  if (a.has("threads")) cli::check(moert_options_set_int(o, "threads", a.get_int("threads", 0)), "--threads");
  if (a.has("kv-cache-bytes"))
    cli::check(moert_options_set_int(o, "kv_cache_bytes", a.get_int("kv-cache-bytes", 0)),
               "--kv-cache-bytes");
  if (a.has("max-batch"))
    cli::check(moert_options_set_int(o, "max_batch", a.get_int("max-batch", 0)), "--max-batch");
  if (a.has("device")) cli::check(moert_options_set_string(o, "device", a.get("device").c_str()), "--device");
  if (a.has("activations"))
    cli::check(moert_options_set_string(o, "activations", a.get("activations").c_str()), "--activations");
  if (a.has("batch-invariant"))
    cli::check(moert_options_set_int(o, "batch_invariant", 1), "--batch-invariant");
  if (a.has("no-weight-check")) cli::check(moert_options_set_int(o, "check_weights", 0), "--no-weight-check");
  moert_model* m = nullptr;
  cli::check(moert_model_load(dir.c_str(), o, nullptr, nullptr, &m), "loading the model");
  moert_options_free(o);
  return m;
}

std::string folder_name(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t at = dir.rfind('/');
  return at == std::string::npos ? dir : dir.substr(at + 1);
}

}  // namespace

int main(int argc, char** argv) {
  // `moert serve ARGS` runs `moert-serve serve ARGS`; run directly, the options start at argv[1].
  const int first = argc > 1 && std::string(argv[1]) == "serve" ? 2 : 1;
  const cli::Command cmd = serve_command();
  cli::Args a(argc, argv, first, cmd);
  serve::ServeConfig c;
  c.host = a.get("host", c.host);
  const long long port = a.get_int("port", c.port);
  if (port < 0 || port > 65535) cli::die("--port must be 0..65535");
  c.port = static_cast<int>(port);
  const char* env_key = std::getenv("MOERT_API_KEY");
  c.api_key = a.get("api-key", env_key ? env_key : "");
  c.max_streams = a.get_int("max-streams", c.max_streams);
  if (c.max_streams < 1 || c.max_streams > 4096) cli::die("--max-streams must be 1..4096");
  c.max_body_bytes = a.get_int("max-body-bytes", c.max_body_bytes);
  if (c.max_body_bytes < 1) cli::die("--max-body-bytes must be positive");
  c.shutdown_grace_s = a.get_double("shutdown-timeout", c.shutdown_grace_s);
  if (c.shutdown_grace_s < 0) cli::die("--shutdown-timeout must not be negative");
  c.log_requests = a.has("log");

  // SIGINT/SIGTERM are taken by one thread (sigwait); every other thread, moert's included, blocks them.
  // SIGPIPE is ignored: a client that went away is a failed write, not the end of the server.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::string dir = a.get("model", cli::default_model_dir());
  try {
    serve::ServedModel model(load(a, dir), a.get("alias", folder_name(dir)));
    serve::HttpServer server(c, model);
    const int bound = server.bind();
    std::printf("moert serve: model '%s' on http://%s:%d\n", model.id().c_str(), c.host.c_str(), bound);
    std::fflush(stdout);
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&sigs, &sig);
      std::fprintf(stderr, "moert serve: %s: finishing in-flight requests\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
      server.stop();
    });
    const bool ok = server.run();
    if (!ok) {
      std::fprintf(stderr, "moert serve: listening failed\n");
      std::_Exit(1);  // the waiter still blocks in sigwait
    }
    waiter.join();
  } catch (const std::exception& e) {
    cli::die(e.what());
  }
  std::fprintf(stderr, "moert serve: stopped\n");
  return 0;
}
