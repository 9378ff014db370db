// A sequence a host evaluates itself (moert_session, moert_model_logits): tokens appended and their logits
// returned, truncation, and the KV image of its cache (kv/kv_image.h) out and in. Its forwards go through the
// engine's scheduler, batched with the running requests. One thread at a time; the model outlives it (it
// holds the ServedModel).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/generation_params.h"
#include "engine/request_stream.h"
#include "kv/latent_cache.h"

namespace moert {

class ServedModel;

class Session {
 public:
  explicit Session(std::shared_ptr<ServedModel> service);
  // A sequence from a KV image exported by a model of the same checkpoint: Error(kFormat) naming the check
  // that failed, kOutOfMemory when the cache cannot hold it. It may continue as a generation (generate(),
  // which expert parallelism allows); eval() needs a direct forward (kUnsupported with expert parallelism
  // over more than one rank).
  static Session import_image(std::shared_ptr<ServedModel> service, const void* data, size_t size);

  // Appends n >= 1 tokens; writes the logits of every row (all_logits) or of the last one, vocab floats each.
  // Throws kInvalidArgument for a bad token id or a context overflow, kOutOfMemory for a full cache (the
  // sequence is then unchanged), kUnsupported with expert parallelism over more than one rank.
  void eval(const int32_t* tokens, int64_t n, bool all_logits, float* logits);
  int64_t length() const { return kv_.length(); }
  int64_t vocab_size() const;
  // Keeps the first `length` tokens (kInvalidArgument when length is negative or past the end).
  void truncate(int64_t length);
  // The KV image of the sequence: kInvalidArgument when it holds no tokens or was truncated since its last
  // evaluation (the image carries the logits after its last token).
  std::vector<uint8_t> export_image() const;
  // Generation that continues the sequence, its first token sampled from the last logits
  // (moert_generate_resume); the cache moves to the request. kFormat when the sequence has no last logits.
  std::shared_ptr<RequestStream> generate(GenerationParams params) &&;

 private:
  std::shared_ptr<ServedModel> service_;
  KvSequence kv_;
  std::vector<int32_t> tokens_;     // what kv_ holds
  std::vector<float> last_logits_;  // after tokens_.back() (empty after a truncate)
};

}  // namespace moert
