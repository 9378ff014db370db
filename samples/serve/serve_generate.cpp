// POST /v1/chat/completions and /v1/completions: the request becomes one moert stream (so concurrent
// requests batch together in moert's engine); its tokens go back as one JSON body or as server-sent
// events. The first event is awaited before the status is sent, so a request moert cannot run (the KV
// budget is full) is a 503, not a 200 with an error inside. A streaming client that disconnects makes
// the next write fail, and one waiting for a whole response (or for its first token) is seen hanging up
// (PeerWatch): either way the stream is then freed, which cancels it and returns its KV pages.
#include <httplib.h>

#include <memory>

#include "serve_api_error.h"
#include "serve_http.h"
#include "serve_logprobs.h"
#include "serve_peer.h"
#include "serve_reasoning.h"
#include "serve_request.h"
#include "serve_responses.h"
#include "serve_tools.h"

namespace serve {
namespace {

// The status for a stream that failed before producing anything.
ApiError stream_failure(const std::string& error) {
  if (error.find("KV cache full") != std::string::npos)
    return ApiError(503, "the server's KV-cache budget is full: " + error, "", "kv_cache_full");
  return ApiError(500, "generation failed: " + error);
}

// The client hung up before its response was ready.
struct ClientGone {};

struct Exchange {
  Exchange(ServerState& st, const httplib::Request& http, GenRequest g, moert_options* o)
      : peer(http.remote_addr, http.remote_port, http.local_port),
        req(std::move(g)),
        opts(o),
        gen(st.streams, st.model.handle(), req.prompt, o, req.logprobs >= 0),
        head(make_head(req.chat, st.model.id())),
        split(req.chat && st.model.opens_reasoning(), st.model.opens_reasoning()),
        logprobs(st.model, req.chat, req.token_ids),
        tools(req.tools ? st.model.tool_markers() : nullptr, st.model.tool_section_token()),
        model(st.model) {}
  ~Exchange() { moert_options_free(opts); }
  Usage usage() const { return {static_cast<int64_t>(req.prompt.size()), gen.generated_tokens()}; }
  // The content part of an event's text (the text after a tool-call section opens is held for the calls).
  std::string content_piece(const StreamEvent& ev) {
    // A section opens in the content only, not inside R1's reasoning.
    if (!tools.in_section() && !split.in_content()) return ev.text;
    return tools.feed(ev.token, ev.text, ev.finish == MOERT_FINISH_EOS);
  }
  // After the last event: the reply's tool calls (OpenAI's tool_calls, with "index" when streamed), or
  // false when there is no section or it does not parse (then *raw is its text, to return as content).
  bool tool_calls(bool indexed, nlohmann::json* calls, std::string* raw) {
    if (!tools.in_section()) return false;
    const std::string text = model.detokenize(tools.section_tokens());
    std::vector<ToolCall> parsed;
    if (!parse_tool_calls(*tools.markers(), text, &parsed)) {
      *raw = text;
      return false;
    }
    if (!req.parallel_tool_calls) parsed.resize(1);
    *calls = nlohmann::json::array();
    for (size_t i = 0; i < parsed.size(); ++i) {
      nlohmann::json c = {{"id", parsed[i].id.empty() ? random_id("call_") : parsed[i].id},
                          {"type", "function"},
                          {"function", {{"name", parsed[i].name}, {"arguments", parsed[i].arguments}}}};
      if (indexed) c["index"] = i;
      calls->push_back(std::move(c));
    }
    return true;
  }
  // OpenAI's finish_reason: "tool_calls" when the reply ended (not cut off) after calling tools.
  static const char* finish_name(int32_t finish, bool called) {
    return called && finish != MOERT_FINISH_LENGTH ? "tool_calls" : finish_reason_name(finish);
  }
  // The next event; ClientGone when the client hangs up first.
  StreamEvent next() {
    StreamEvent ev;
    while (!gen.next(100, &ev))
      if (peer.gone()) throw ClientGone{};
    if (peer.gone()) throw ClientGone{};
    return ev;
  }

  PeerWatch peer;
  GenRequest req;
  moert_options* opts;
  Generation gen;
  ResponseHead head;
  ReasoningSplitter split;
  LogprobsCollector logprobs;
  ToolCallSplitter tools;
  const ServedModel& model;
  StreamEvent first;
};

void respond_whole(Exchange& x, httplib::Response& res) {
  std::string content, reasoning;
  StreamEvent ev = std::move(x.first);
  for (;;) {
    x.split.feed(x.content_piece(ev), &reasoning, &content);
    x.logprobs.add(ev);
    if (ev.finish != MOERT_FINISH_NONE) break;
    ev = x.next();
  }
  x.split.finish(&reasoning, &content);
  if (ev.finish == MOERT_FINISH_ERROR) throw stream_failure(x.gen.error());
  if (ev.finish == MOERT_FINISH_CANCELLED) throw ApiError(503, "cancelled: the server is shutting down");
  const nlohmann::json lp = x.logprobs.take();
  nlohmann::json calls;
  std::string raw;
  const bool called = x.tool_calls(false, &calls, &raw);
  content += raw;
  res.set_content(
      completion_body(x.head, content, x.split.enabled(), reasoning, Exchange::finish_name(ev.finish, called),
                      x.usage(), x.req.logprobs >= 0 ? &lp : nullptr, called ? &calls : nullptr),
      "application/json");
}

// Writes the whole stream from one provider call: false when the client is gone.
bool write_stream(Exchange& x, httplib::DataSink& sink) {
  auto put = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  const bool usage_null = x.req.include_usage;
  if (x.req.chat && !put(chunk_event(x.head, true, "", "", nullptr, usage_null))) return false;
  StreamEvent ev = std::move(x.first);
  int idle_ms = 0;
  for (;;) {
    std::string content, reasoning;
    x.split.feed(x.content_piece(ev), &reasoning, &content);
    if (ev.finish != MOERT_FINISH_NONE) x.split.finish(&reasoning, &content);
    // A token whose text is still held back (a possible stop string) keeps its entry for the next chunk.
    x.logprobs.add(ev);
    if (!content.empty() || !reasoning.empty()) {
      const nlohmann::json lp = x.logprobs.take();
      if (!put(chunk_event(x.head, false, content, reasoning, nullptr, usage_null,
                           x.req.logprobs >= 0 ? &lp : nullptr)))
        return false;
    }
    if (ev.finish != MOERT_FINISH_NONE) break;
    // Waiting: a comment line now and then, so a client that left is noticed even between tokens.
    while (!x.gen.next(250, &ev)) {
      idle_ms += 250;
      if (idle_ms >= 1000) {
        idle_ms = 0;
        if (!put(": keep-alive\n\n")) return false;
      }
    }
    idle_ms = 0;
  }
  if (ev.finish == MOERT_FINISH_ERROR) {
    const ApiError e = stream_failure(x.gen.error());
    put(error_event(e.status, e.what()));
  } else if (ev.finish == MOERT_FINISH_CANCELLED) {
    put(error_event(503, "cancelled: the server is shutting down"));
  } else {
    // A tool-call section is sent whole at the end: one delta with every call (or its text, as content,
    // when it does not parse).
    nlohmann::json calls;
    std::string raw;
    const bool called = x.tool_calls(true, &calls, &raw);
    if ((called || !raw.empty()) &&
        !put(chunk_event(x.head, false, raw, "", nullptr, usage_null, nullptr, called ? &calls : nullptr)))
      return false;
    const bool left = !x.logprobs.empty();  // entries no text chunk carried yet
    const nlohmann::json lp = x.logprobs.take();
    if (!put(chunk_event(x.head, false, "", "", Exchange::finish_name(ev.finish, called), usage_null,
                         x.req.logprobs >= 0 && left ? &lp : nullptr)))
      return false;
    if (x.req.include_usage && !put(usage_event(x.head, x.usage()))) return false;
    if (!put(done_event())) return false;
  }
  sink.done();
  return true;
}

}  // namespace

void handle_generate(ServerState& st, const httplib::Request& req, httplib::Response& res, bool chat) {
  GenRequest g = parse_request(req.body, chat, st.model);
  moert_options* o = generation_options(g);
  std::shared_ptr<Exchange> x;
  try {
    x = std::make_shared<Exchange>(st, req, std::move(g), o);
  } catch (...) {
    moert_options_free(o);
    throw;
  }
  x->first = x->gen.next();
  if (x->first.finish == MOERT_FINISH_ERROR) throw stream_failure(x->gen.error());
  if (x->first.finish == MOERT_FINISH_CANCELLED)
    throw ApiError(503, "cancelled: the server is shutting down");
  if (!x->req.stream) return respond_whole(*x, res);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  // The exchange lives until httplib is done with the provider (released: the stream is freed then).
  res.set_chunked_content_provider(
      "text/event-stream", [x](size_t, httplib::DataSink& sink) { return write_stream(*x, sink); },
      [x](bool) mutable { x.reset(); });
}

}  // namespace serve
