// moert quantize: write a copy of a checkpoint with 4-bit expert weights (moert_q4) for CPU use, through
// moert_checkpoint_quantize, showing progress on stderr.
#include <cstdio>
#include <string>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {
namespace {

const char kUsage[] =
    "usage: moert quantize --model DIR --out DIR --experts q4 [--group-size 32|64|128] [--threads N]\n"
    "                      [--quiet]\n"
    "Write a copy of the checkpoint in --model into --out with its routed and shared expert weights 4-bit\n"
    "(moert_q4: a code per weight, an fp16 scale and offset per --group-size columns, default 32); the\n"
    "attention, router, norms, embeddings and head are copied as released. `moert run --model OUT` runs it\n"
    "on the CPU.\n";

}  // namespace

int cmd_quantize(int argc, char** argv) {
  Command cmd{"quantize",
              kUsage,
              {{"model", true, {"-m"}},
               {"out", true, {"-o"}},
               {"experts"},
               {"group-size"},
               {"threads", true, {"-t"}},
               {"quiet", false}}};
  Args a(argc, argv, 2, cmd);
  const std::string model = a.require("model"), out = a.require("out"), experts = a.require("experts");
  if (experts != "q4") {
    std::fprintf(stderr, "moert quantize: --experts '%s': the format is q4\n\n%s", experts.c_str(), kUsage);
    return 2;
  }
  moert_options* o = nullptr;
  check(moert_options_create(&o), "options");
  if (a.has("group-size"))
    check(moert_options_set_int(o, "quantize.group_size", a.get_int("group-size", 32)), "--group-size");
  if (a.has("threads"))
    check(moert_options_set_int(o, "quantize.threads", a.get_int("threads", 0)), "--threads");
  Progress progress{"quantize", a.has("quiet")};
  check(moert_checkpoint_quantize(model.c_str(), out.c_str(), o, print_progress, &progress), "quantizing");
  moert_options_free(o);
  std::printf("wrote %s (experts q4, group size %lld)\n", out.c_str(), a.get_int("group-size", 32));
  return 0;
}

}  // namespace cli
