// moert make-model: write a random-weight DeepSeek-V3 checkpoint of any shape.
#include <cstdio>
#include <string>
#include <utility>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {

int cmd_make_model(int argc, char** argv) {
  Args a(argc, argv, 2, {"bf16"});
  const std::string out = a.require("out");
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  const std::pair<const char*, const char*> flags[] = {
      {"vocab", "model.vocab"},     {"hidden", "model.hidden"},         {"inter", "model.intermediate"},
      {"moe-inter", "model.moe_intermediate"}, {"layers", "model.layers"}, {"dense-layers", "model.dense_layers"},
      {"heads", "model.heads"},     {"q-lora", "model.q_lora"},         {"kv-lora", "model.kv_lora"},
      {"experts", "model.experts"}, {"top-k", "model.top_k"},           {"groups", "model.groups"},
      {"topk-groups", "model.topk_groups"}, {"shared", "model.shared"}, {"mtp", "model.mtp"},
      {"seed", "model.seed"}};
  for (auto [flag, key] : flags)
    if (a.has(flag)) check(moert_options_set_int(o, key, a.get_int(flag, 0)), (std::string("--") + flag).c_str());
  if (a.has("bf16")) check(moert_options_set_int(o, "model.fp8", 0), "--bf16");
  check(moert_checkpoint_write_random(out.c_str(), o), "writing the checkpoint");
  moert_options_free(o);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace cli
