// moert make-model: write a random-weight DeepSeek-V3-shaped checkpoint (DeepSeek-V3's dimensions unless
// told otherwise), with a tokenizer so `moert run` works on it, showing progress on stderr.
#include <cstdio>
#include <filesystem>
#include <string>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {
namespace {

struct ShapeFlag {
  const char* flag;
  const char* key;
  long long v3;  // DeepSeek-V3's value (layers: 3 of its 61, one of them dense, for a checkpoint that fits)
};

const ShapeFlag kShape[] = {{"vocab", "model.vocab", 129280},
                            {"hidden", "model.hidden", 7168},
                            {"inter", "model.intermediate", 18432},
                            {"moe-inter", "model.moe_intermediate", 2048},
                            {"layers", "model.layers", 3},
                            {"dense-layers", "model.dense_layers", 1},
                            {"heads", "model.heads", 128},
                            {"q-lora", "model.q_lora", 1536},
                            {"kv-lora", "model.kv_lora", 512},
                            {"experts", "model.experts", 256},
                            {"top-k", "model.top_k", 8},
                            {"groups", "model.groups", 8},
                            {"topk-groups", "model.topk_groups", 4},
                            {"shared", "model.shared", 1},
                            {"mtp", "model.mtp", 0},
                            {"seed", "model.seed", 1}};

const char kUsage[] =
    "usage: moert make-model --out DIR [--hidden 7168] [--layers 3] [--dense-layers 1] [--heads 128]\n"
    "                        [--q-lora 1536] [--kv-lora 512] [--experts 256] [--moe-inter 2048]\n"
    "                        [--inter 18432] [--top-k 8] [--groups 8] [--topk-groups 4] [--shared 1]\n"
    "                        [--vocab 129280] [--mtp 0] [--seed 1] [--bf16] [--quiet]\n"
    "Write a random-weight checkpoint of that shape (defaults: DeepSeek-V3's, 3 layers), FP8 e4m3 with\n"
    "128x128 scales unless --bf16, with a tokenizer (DeepSeek-V3's for vocab >= 129280, else the shipped\n"
    "model's when it fits) so that `moert run` works on it.\n";

// Copies tokenizer.json and tokenizer_config.json from `from` into `to`; false when `from` has none.
bool copy_tokenizer(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(from + "/tokenizer.json", ec)) return false;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    if (!fs::is_regular_file(from + "/" + f, ec)) continue;
    fs::copy_file(from + "/" + f, to + "/" + f, fs::copy_options::overwrite_existing, ec);
    if (ec) die("copying " + from + "/" + f + " to " + to + ": " + ec.message());
  }
  return true;
}

}  // namespace

int cmd_make_model(int argc, char** argv) {
  Command cmd{"make-model", kUsage, {{"out", true, {"-o"}}, {"bf16", false}, {"quiet", false}}};
  for (const ShapeFlag& f : kShape) cmd.opts.push_back({f.flag});
  Args a(argc, argv, 2, cmd);
  const std::string out = a.require("out");
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  for (const ShapeFlag& f : kShape)
    check(moert_options_set_int(o, f.key, a.get_int(f.flag, f.v3)), (std::string("--") + f.flag).c_str());
  if (a.has("bf16")) check(moert_options_set_int(o, "model.fp8", 0), "--bf16");
  Progress progress{"make-model", a.has("quiet")};
  check(moert_checkpoint_write_random_v2(out.c_str(), o, print_progress, &progress),
        "writing the checkpoint");
  moert_options_free(o);
  // The tokenizer's ids must all be rows of the embedding.
  const long long vocab = a.get_int("vocab", 129280);
  std::string tok;
  if (vocab >= 129280 && copy_tokenizer(v3_tokenizer_dir(), out))
    tok = "DeepSeek-V3's tokenizer";
  else if (vocab >= 8320 && copy_tokenizer(default_model_dir(), out))
    tok = "the shipped model's tokenizer";
  std::printf(
      "wrote %s%s\n", out.c_str(),
      tok.empty() ? " (no tokenizer fits this vocab: generate from token ids)" : (" with " + tok).c_str());
  return 0;
}

}  // namespace cli
