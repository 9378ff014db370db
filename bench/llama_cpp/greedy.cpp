// llama.cpp's side of compare.sh's fidelity check, scored the way moert_q4_bench scores moert's q4 copy:
// the greedy tokens each prompt keeps of the reference continuation (reference.safetensors, from
// transformers), and teacher-forced logits over prompt + reference against the unquantised GGUF's.
//
// usage: llama_greedy MODEL.gguf greedy N IDS [IDS ...]   one line per prompt: N greedy ids, comma-separated
//        llama_greedy MODEL.gguf logits OUT IDS           OUT: every position's logits, float32 [len][vocab]
// IDS: comma-separated token ids, BOS included. Built by compare.sh against the llama.cpp tree it builds
// (not part of moert's CMake build). 2 threads, one context per prompt.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

namespace {

void quiet(ggml_log_level, const char*, void*) {}

std::vector<llama_token> parse_ids(const char* s) {
  std::vector<llama_token> ids;
  while (*s) {
    char* end = nullptr;
    ids.push_back(static_cast<llama_token>(std::strtol(s, &end, 10)));
    if (end == s) break;
    s = *end == ',' ? end + 1 : end;
  }
  return ids;
}

llama_context* make_context(llama_model* model, size_t tokens) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(tokens + 16);
  cp.n_batch = cp.n_ubatch = cp.n_ctx;
  cp.n_threads = cp.n_threads_batch = 2;
  return llama_init_from_model(model, cp);
}

// Decodes ids at positions pos0.. with every position's logits kept (all) or only the last.
bool decode(llama_context* ctx, const std::vector<llama_token>& ids, int pos0, bool all) {
  llama_batch b = llama_batch_init(static_cast<int32_t>(ids.size()), 0, 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    b.token[i] = ids[i];
    b.pos[i] = pos0 + static_cast<int>(i);
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = all || i + 1 == ids.size();
  }
  b.n_tokens = static_cast<int32_t>(ids.size());
  const bool ok = llama_decode(ctx, b) == 0;
  llama_batch_free(b);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || (std::strcmp(argv[2], "greedy") != 0 && std::strcmp(argv[2], "logits") != 0)) {
    std::fprintf(stderr,
                 "usage: llama_greedy MODEL.gguf greedy N IDS [IDS ...]\n"
                 "       llama_greedy MODEL.gguf logits OUT IDS\n");
    return 2;
  }
  llama_log_set(quiet, nullptr);
  llama_backend_init();
  llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
  if (!model) {
    std::fprintf(stderr, "llama_greedy: cannot load %s\n", argv[1]);
    return 1;
  }
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  auto argmax = [n_vocab](const float* l) {
    int best = 0;
    for (int t = 1; t < n_vocab; ++t)
      if (l[t] > l[best]) best = t;
    return best;
  };

  if (std::strcmp(argv[2], "logits") == 0) {
    const std::vector<llama_token> ids = parse_ids(argv[4]);
    llama_context* ctx = make_context(model, ids.size());
    if (!ctx || !decode(ctx, ids, 0, true)) return 1;
    FILE* f = std::fopen(argv[3], "wb");
    if (!f) return 1;
    for (size_t i = 0; i < ids.size(); ++i)
      std::fwrite(llama_get_logits_ith(ctx, static_cast<int32_t>(i)), sizeof(float), n_vocab, f);
    std::fclose(f);
    llama_free(ctx);
  } else {
    const int n = std::atoi(argv[3]);
    for (int p = 4; p < argc; ++p) {
      std::vector<llama_token> ids = parse_ids(argv[p]);
      llama_context* ctx = make_context(model, ids.size() + n);
      if (!ctx || !decode(ctx, ids, 0, false)) return 1;
      std::string out;
      int pos = static_cast<int>(ids.size());
      for (int i = 0; i < n; ++i) {
        const llama_token next = argmax(llama_get_logits_ith(ctx, -1));
        out += (i ? "," : "") + std::to_string(next);
        if (i + 1 < n && !decode(ctx, {next}, pos++, false)) return 1;
      }
      std::printf("%s\n", out.c_str());
      llama_free(ctx);
    }
  }
  llama_model_free(model);
  return 0;
}
