// The scheduler's side of one generation request: its prompt and parameters, its KV sequence, the
// sampling state and what it has fed and emitted. Touched by the engine's scheduler thread only; the
// consumer sees the request through its RequestStream.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/sampling.h"
#include "engine/generation_params.h"
#include "engine/request_stream.h"
#include "engine/text_stream.h"
#include "kv/latent_cache.h"

namespace moert {

struct RequestState {
  std::shared_ptr<RequestStream> stream;
  std::vector<int32_t> prompt;
  GenerationParams params;
  KvSequence kv;
  bool prefix_looked_up = false;
  std::vector<float> resume_logits;  // a resumed request's: its first token is sampled from them
  bool resumed = false;              // its cache came from a KV image (main layers only, no MTP slot)
  bool speculative = false;          // drafts with the MTP module (the engine's setting, no penalties)
  std::vector<int32_t> drafts;       // drafted tokens to follow last_token, verified by the next step
  std::vector<int32_t> feed;         // this step's tokens: last_token then the drafts
  std::vector<int32_t> mtp_next;     // this step's MTP input: the token after each position it covers
  std::vector<int32_t> output;  // the tokens emitted so far (with the prompt: what kv holds, and one more)
  int64_t prefilled = 0;
  int32_t last_token = -1;
  bool finished = false;  // its final event is delivered
  TokenHistory history;
  SamplingRng rng;
  std::unique_ptr<TokenTextDecoder> decoder;
  std::unique_ptr<StopMatcher> stops;

  int64_t generated() const { return static_cast<int64_t>(output.size()); }
};

}  // namespace moert
