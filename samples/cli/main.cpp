// moert: the command-line front end. Every subcommand goes through the public C API (moert.h).
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "moert/moert.h"

namespace {

void usage() {
  std::printf(
      "moert %s: run DeepSeek-V3-architecture MoE models\n\n"
      "usage: moert <command> [options]\n\n"
      "commands:\n"
      "  logits   --model DIR --tokens 5,17,3 --out FILE [--decode-from K] [--activations fp32|fp8] [--threads N]\n"
      "           write float32 logits [tokens, vocab] (little-endian, row-major)\n"
      "  info     [--model DIR]   the config as understood, parameter count, KV-cache bytes per token\n"
      "  version  print the library version\n",
      moert_version_string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage();
    return argc < 2 ? 1 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "logits") return cli::cmd_logits(argc, argv);
  if (cmd == "info") return cli::cmd_info(argc, argv);
  if (cmd == "version") {
    std::printf("moert %s (API %d)\n", moert_version_string(), moert_api_version());
    return 0;
  }
  std::fprintf(stderr, "moert: unknown command '%s'\n\n", cmd.c_str());
  usage();
  return 1;
}
