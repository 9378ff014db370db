// The HTTP side, on cpp-httplib: routes, API-key check, body limit, OpenAI error objects for every
// failure, a bounded pool of connection threads, and a stop that lets in-flight streams end first.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "serve_model.h"
#include "serve_streams.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace serve {

struct ServeConfig {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: a free port (printed)
  std::string api_key;
  int64_t max_streams = 128;         // requests in flight at once (running + queued in moert)
  int64_t max_body_bytes = 8 << 20;  // larger bodies: 413
  double shutdown_grace_s = 10;      // SIGINT/SIGTERM: in-flight streams get this long to finish
  bool log_requests = false;
};

struct ServerState {
  ServerState(const ServeConfig& c, ServedModel& m) : config(c), model(m), streams(c.max_streams) {}
  const ServeConfig& config;
  ServedModel& model;
  StreamRegistry streams;
};

class HttpServer {
 public:
  HttpServer(const ServeConfig& config, ServedModel& model);
  ~HttpServer();
  // Binds (port 0: any free port); returns the port or throws.
  int bind();
  // Serves until stop(); returns false when listening failed.
  bool run();
  // From another thread: no new requests; in-flight streams get the grace period, then are cancelled;
  // then the listener and the connection threads end.
  void stop();

 private:
  ServerState state_;
  std::unique_ptr<httplib::Server> svr_;
};

// /v1/chat/completions and /v1/completions (serve_generate.cpp).
void handle_generate(ServerState& st, const httplib::Request& req, httplib::Response& res, bool chat);

}  // namespace serve
