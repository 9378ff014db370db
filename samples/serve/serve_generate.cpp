// POST /v1/chat/completions and /v1/completions: each of the request's n choices becomes a moert stream
// (so they, and concurrent requests, batch together in moert's engine, the prompt's KV pages shared by
// the prefix cache); their tokens go back as one JSON body or as server-sent events. The first event is
// awaited before the status is sent, so a request moert cannot run (the KV budget is full) is a 503, not a
// 200 with an error inside. A streaming client that disconnects makes the next write fail, and one waiting
// for a whole response (or for its first token) is seen hanging up (PeerWatch): either way the streams are
// then freed, which cancels them and returns their KV pages.
#include <httplib.h>

#include <chrono>
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

// One of the request's n choices: its moert stream and what reads its events.
struct Choice {
  Choice(ServerState& st, const GenRequest& req, moert_options* o, int64_t index)
      : index(index),
        opts(o),
        gen(st.streams, st.model.handle(), req.prompt, o, req.logprobs >= 0),
        split(req.chat && st.model.opens_reasoning(), st.model.opens_reasoning()),
        logprobs(st.model, req.chat, req.token_ids),
        tools(req.tools ? st.model.tool_markers() : nullptr, st.model.tool_section_token()) {}
  ~Choice() { moert_options_free(opts); }
  Choice(const Choice&) = delete;
  Choice& operator=(const Choice&) = delete;

  // Feeds an event: appends its content and reasoning (the text after a tool-call section opens is held
  // for the calls; a section opens in the content only, not inside R1's reasoning) and its logprobs.
  void feed(const StreamEvent& ev, std::string* reasoning, std::string* content) {
    const std::string piece = !tools.in_section() && !split.in_content()
                                  ? ev.text
                                  : tools.feed(ev.token, ev.text, ev.finish == MOERT_FINISH_EOS);
    split.feed(piece, reasoning, content);
    if (ev.finish != MOERT_FINISH_NONE) split.finish(reasoning, content);
    logprobs.add(ev);
  }
  // After the last event: the reply's tool calls (OpenAI's tool_calls, with "index" when streamed), or
  // false when there is no section or it does not parse (then *raw is its text, to return as content).
  bool tool_calls(const ServedModel& model, bool parallel, bool indexed, nlohmann::json* calls,
                  std::string* raw) {
    if (!tools.in_section()) return false;
    const std::string text = model.detokenize(tools.section_tokens());
    std::vector<ToolCall> parsed;
    if (!parse_tool_calls(*tools.markers(), text, &parsed)) {
      *raw = text;
      return false;
    }
    if (!parallel) parsed.resize(1);
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

  const int64_t index;
  moert_options* opts;
  Generation gen;
  ReasoningSplitter split;
  LogprobsCollector logprobs;
  ToolCallSplitter tools;
  StreamEvent first;  // awaited before the status is sent
  bool ended = false;
};

// OpenAI's finish_reason: "tool_calls" when the reply ended (not cut off) after calling tools.
const char* finish_name(int32_t finish, bool called) {
  return called && finish != MOERT_FINISH_LENGTH ? "tool_calls" : finish_reason_name(finish);
}

// The error of a choice that ended without a reply.
ApiError ended_badly(const Choice& c, int32_t finish) {
  if (finish == MOERT_FINISH_ERROR) return stream_failure(c.gen.error());
  return ApiError(503, "cancelled: the server is shutting down");
}

struct Exchange {
  Exchange(ServerState& st, const httplib::Request& http, GenRequest g)
      : peer(http.remote_addr, http.remote_port, http.local_port),
        req(std::move(g)),
        head(make_head(req.chat, st.model.id())),
        model(st.model) {
    choices.reserve(static_cast<size_t>(req.n));
    add_choice(st);
  }
  // Starts the next choice. Choice i samples with seed + i when the request has a seed (distinct and
  // repeatable), else each draws its own.
  void add_choice(ServerState& st) {
    const int64_t i = static_cast<int64_t>(choices.size());
    GenRequest one = req;
    if (one.seed) *one.seed += i;
    moert_options* o = generation_options(one);
    try {
      choices.push_back(std::make_unique<Choice>(st, req, o, i));  // no reallocation: reserved
    } catch (...) {
      moert_options_free(o);
      throw;
    }
  }
  Usage usage() const {
    Usage u{static_cast<int64_t>(req.prompt.size()), 0};
    for (const auto& c : choices) u.completion_tokens += c->gen.generated_tokens();
    return u;
  }
  // A choice's next event; ClientGone when the client hangs up first.
  StreamEvent next(Choice& c) {
    StreamEvent ev;
    while (!c.gen.next(100, &ev))
      if (peer.gone()) throw ClientGone{};
    if (peer.gone()) throw ClientGone{};
    return ev;
  }

  PeerWatch peer;
  GenRequest req;
  ResponseHead head;
  const ServedModel& model;
  std::vector<std::unique_ptr<Choice>> choices;
};

void respond_whole(Exchange& x, httplib::Response& res) {
  // Each choice read to its end in turn: the others run meanwhile, their events queued in moert.
  std::vector<ChoiceBody> bodies(x.choices.size());
  std::vector<nlohmann::json> lps(x.choices.size()), calls(x.choices.size());
  for (size_t i = 0; i < x.choices.size(); ++i) {
    Choice& c = *x.choices[i];
    ChoiceBody& b = bodies[i];
    StreamEvent ev = std::move(c.first);
    for (;;) {
      c.feed(ev, &b.reasoning, &b.content);
      if (ev.finish != MOERT_FINISH_NONE) break;
      ev = x.next(c);
    }
    if (ev.finish == MOERT_FINISH_ERROR || ev.finish == MOERT_FINISH_CANCELLED)
      throw ended_badly(c, ev.finish);
    lps[i] = c.logprobs.take();
    std::string raw;
    const bool called = c.tool_calls(x.model, x.req.parallel_tool_calls, false, &calls[i], &raw);
    b.content += raw;
    b.finish_reason = finish_name(ev.finish, called);
    b.logprobs = x.req.logprobs >= 0 ? &lps[i] : nullptr;
    b.tool_calls = called ? &calls[i] : nullptr;
  }
  res.set_content(completion_body(x.head, bodies, x.choices[0]->split.enabled(), x.usage()),
                  "application/json");
}

// Writes the whole stream from one provider call: false when the client is gone. The choices' events
// are interleaved as they come, each chunk naming its choice's index.
bool write_stream(Exchange& x, httplib::DataSink& sink) {
  auto put = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  const bool usage_null = x.req.include_usage;
  const bool want_lp = x.req.logprobs >= 0;
  if (x.req.chat)
    for (const auto& c : x.choices)
      if (!put(chunk_event(x.head, c->index, true, "", "", nullptr, usage_null))) return false;
  // A choice's event: its text chunk now (with the logprobs of the tokens it carries; a token whose text
  // is still held back, a possible stop string, keeps its entry for the next chunk), and at its end the
  // tool calls (a section is sent whole: one delta with every call, or its text as content when it does
  // not parse) and the finish chunk. False when the client is gone; an error ends the stream.
  bool failed = false;
  auto on_event = [&](Choice& c, const StreamEvent& ev) {
    std::string content, reasoning;
    c.feed(ev, &reasoning, &content);
    if (!content.empty() || !reasoning.empty()) {
      const nlohmann::json lp = c.logprobs.take();
      if (!put(chunk_event(x.head, c.index, false, content, reasoning, nullptr, usage_null,
                           want_lp ? &lp : nullptr)))
        return false;
    }
    if (ev.finish == MOERT_FINISH_NONE) return true;
    c.ended = true;
    if (ev.finish == MOERT_FINISH_ERROR || ev.finish == MOERT_FINISH_CANCELLED) {
      const ApiError e = ended_badly(c, ev.finish);
      put(error_event(e.status, e.what()));
      failed = true;
      return true;
    }
    nlohmann::json calls;
    std::string raw;
    const bool called = c.tool_calls(x.model, x.req.parallel_tool_calls, true, &calls, &raw);
    if ((called || !raw.empty()) && !put(chunk_event(x.head, c.index, false, raw, "", nullptr, usage_null,
                                                     nullptr, called ? &calls : nullptr)))
      return false;
    const bool left = !c.logprobs.empty();  // entries no text chunk carried yet
    const nlohmann::json lp = c.logprobs.take();
    return put(chunk_event(x.head, c.index, false, "", "", finish_name(ev.finish, called), usage_null,
                           want_lp && left ? &lp : nullptr));
  };
  for (const auto& c : x.choices) {
    if (!on_event(*c, c->first)) return false;
    if (failed) break;
  }
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_write = Clock::now();
  size_t turn = 0;
  while (!failed) {
    // Every event that is ready, from every choice; when none is, a short wait on one running choice
    // (in turn), so one stream waits as before and several are each looked at often.
    bool any = false, running = false;
    for (const auto& c : x.choices) {
      StreamEvent ev;
      while (!c->ended && !failed && c->gen.next(0, &ev)) {
        any = true;
        if (!on_event(*c, ev)) return false;
      }
      running |= !c->ended;
    }
    if (!running || failed) break;
    if (any) {
      last_write = Clock::now();
      continue;
    }
    for (size_t k = 0; k < x.choices.size(); ++k) {
      Choice& c = *x.choices[turn++ % x.choices.size()];
      if (c.ended) continue;
      StreamEvent ev;
      if (c.gen.next(x.choices.size() == 1 ? 250 : 20, &ev)) {
        if (!on_event(c, ev)) return false;
        last_write = Clock::now();
      }
      break;
    }
    // Waiting: a comment line now and then, so a client that left is noticed even between tokens.
    if (Clock::now() - last_write >= std::chrono::seconds(1)) {
      last_write = Clock::now();
      if (!put(": keep-alive\n\n")) return false;
    }
  }
  if (!failed) {
    if (x.req.include_usage && !put(usage_event(x.head, x.usage()))) return false;
    if (!put(done_event())) return false;
  }
  sink.done();
  return true;
}

}  // namespace

void handle_generate(ServerState& st, const httplib::Request& req, httplib::Response& res, bool chat) {
  GenRequest g = parse_request(req.body, chat, st.model);
  if (g.n > st.streams.max_streams())
    bad_field("n", "this server runs at most " + std::to_string(st.streams.max_streams()) +
                       " streams (--max-streams), one per choice");
  auto x = std::make_shared<Exchange>(st, req, std::move(g));
  st.streams.count_request();
  // The first choice alone until its first token: its prompt is then prefilled and in the prefix cache,
  // which the other choices' prompts (the same) take their pages from.
  auto await_first = [](Choice& c) {
    c.first = c.gen.next();
    if (c.first.finish == MOERT_FINISH_ERROR || c.first.finish == MOERT_FINISH_CANCELLED)
      throw ended_badly(c, c.first.finish);
  };
  await_first(*x->choices[0]);
  for (int64_t i = 1; i < x->req.n; ++i) x->add_choice(st);
  for (size_t i = 1; i < x->choices.size(); ++i) await_first(*x->choices[i]);
  if (!x->req.stream) return respond_whole(*x, res);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  // The exchange lives until httplib is done with the provider (released: the streams are freed then).
  res.set_chunked_content_provider(
      "text/event-stream", [x](size_t, httplib::DataSink& sink) { return write_stream(*x, sink); },
      [x](bool) mutable { x.reset(); });
}

}  // namespace serve
