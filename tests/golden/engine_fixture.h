// The shipped model's reference prompts and greedy continuations, and helpers to run engine requests.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "golden_fixture.h"

namespace moert::testing {

struct Reference {
  std::vector<std::vector<int32_t>> prompts, greedy;
};

inline Reference load_reference() {
  SafetensorsFile ref(std::string(MOERT_DEFAULT_MODEL_DIR) + "/reference.safetensors");
  Reference r;
  for (int p = 0; ref.tensors().count("prompt" + std::to_string(p) + ".ids"); ++p) {
    for (auto [part, dst] : {std::pair{".ids", &r.prompts}, std::pair{".greedy", &r.greedy}}) {
      const TensorInfo& t = ref.tensors().at("prompt" + std::to_string(p) + part);
      const int32_t* d = reinterpret_cast<const int32_t*>(t.data);
      dst->emplace_back(d, d + t.numel());
    }
  }
  return r;
}

inline std::shared_ptr<ModelInstance> load(int64_t kv_bytes = 64 << 20, int64_t max_batch = 16) {
  LoadOptions o;
  o.threads = 2;
  o.kv_cache_bytes = kv_bytes;
  o.max_batch = max_batch;
  return ModelInstance::load(MOERT_DEFAULT_MODEL_DIR, o);
}

// Collects a request's tokens (and text) until it finishes.
struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish = FinishReason::kNone;
};
inline Collected drain(RequestStream& r) {
  Collected c;
  StreamEvent ev;
  for (;;) {
    auto n = r.next(&ev, std::chrono::seconds(60));
    if (n != RequestStream::Next::kEvent) break;
    if (ev.token >= 0) c.tokens.push_back(ev.token);
    c.text += ev.text;
    if (ev.finish != FinishReason::kNone) {
      c.finish = ev.finish;
      break;
    }
  }
  return c;
}

inline GenerationParams greedy(int64_t n) {
  GenerationParams p;
  p.max_tokens = n;
  p.ignore_eos = true;
  return p;
}

}  // namespace moert::testing
