#include "serve_http.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve_api_error.h"

namespace serve {
namespace {

using json = nlohmann::json;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.status == 503) res.set_header("Retry-After", "1");
  res.set_content(error_body(e), "application/json");
}

// Runs a handler; every failure becomes an OpenAI error object (bad input a 4xx, never a 500).
template <typename F>
void guarded(httplib::Response& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const std::bad_alloc&) {
    send_error(res, ApiError(503, "out of memory"));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
  }
}

bool authorised(const ServerState& st, const httplib::Request& req) {
  if (st.config.api_key.empty()) return true;
  const std::string want = "Bearer " + st.config.api_key;
  return req.get_header_value("Authorization") == want;
}

json model_json(const ServerState& st) {
  static const int64_t created = static_cast<int64_t>(std::time(nullptr));
  return {{"id", st.model.id()},
          {"object", "model"},
          {"created", created},
          {"owned_by", "moert"},
          {"context_length", st.model.context_length()}};
}

}  // namespace

HttpServer::HttpServer(const ServeConfig& config, ServedModel& model)
    : state_(config, model), svr_(std::make_unique<httplib::Server>()) {
  httplib::Server& s = *svr_;
  // One thread per connection in flight: every streaming client holds one while its stream runs. Beyond
  // max_streams the registry answers 503, so a few more threads keep /health and errors responsive.
  const size_t threads = static_cast<size_t>(config.max_streams) + 8;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_payload_max_length(static_cast<size_t>(config.max_body_bytes));
  // Idle keep-alive connections are closed after 5 s (httplib's and Node's default; it was 2 s): clients
  // that honour the Keep-Alive hint httplib sends (undici, Node's fetch, keeps a socket for the hint less
  // 2 s) then reuse connections instead of opening one per request.
  s.set_keep_alive_timeout(5);
  s.set_keep_alive_max_count(1000);
  s.set_read_timeout(30);
  s.set_write_timeout(30);
  s.set_tcp_nodelay(true);

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/v1/", 0) == 0 && !authorised(state_, req)) {
      send_error(res, ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer KEY'", "",
                               "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib answers itself (no route, body too large, bad request line) get an error object too.
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                  httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    std::string code;
    switch (res.status) {
      case 404:
        msg = "no such endpoint: " + req.method + " " + req.path;
        code = "not_found";
        break;
      case 413:
        msg = "the request body is larger than " + std::to_string(state_.config.max_body_bytes) + " bytes";
        code = "request_too_large";
        break;
      default:
        msg = "HTTP error " + std::to_string(res.status);
    }
    res.set_content(error_body(res.status, msg, "", code), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "internal error: " + what));
  });
  if (config.log_requests)
    s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "%s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool stopping = state_.streams.stopping();
    json j = {{"status", stopping ? "shutting_down" : "ok"},
              {"model", state_.model.id()},
              {"active_streams", state_.streams.active()},
              {"max_streams", state_.streams.max_streams()},
              {"requests_total", state_.streams.requests_total()}};
    res.status = stopping ? 503 : 200;
    res.set_content(j.dump(), "application/json");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"object", "list"}, {"data", json::array({model_json(state_)})}}.dump(),
                    "application/json");
  });
  s.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (req.matches[1] != state_.model.id())
        throw ApiError(404, "The model '" + req.matches[1].str() + "' does not exist", "model",
                       "model_not_found");
      res.set_content(model_json(state_).dump(), "application/json");
    });
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { handle_generate(state_, req, res, true); });
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { handle_generate(state_, req, res, false); });
  });
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  const ServeConfig& c = state_.config;
  if (c.port == 0) {
    const int port = svr_->bind_to_any_port(c.host);
    if (port <= 0) throw std::runtime_error("cannot bind to " + c.host);
    return port;
  }
  if (!svr_->bind_to_port(c.host, c.port))
    throw std::runtime_error("cannot bind to " + c.host + ":" + std::to_string(c.port));
  return c.port;
}

bool HttpServer::run() {
  return svr_->listen_after_bind();
}

void HttpServer::stop() {
  state_.streams.stop_admitting();
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(state_.config.shutdown_grace_s * 1000));
  while (state_.streams.active() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  state_.streams.cancel_all();
  while (state_.streams.active() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  svr_->stop();
}

}  // namespace serve
