// moert: the command-line front end. Every subcommand goes through the public C API (moert.h).
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace {

void usage(FILE* out) {
  std::fprintf(
      out,
      "moert %s: run DeepSeek-V3-architecture MoE models\n\n"
      "usage: moert <command> [options]     (moert <command> --help for its options)\n\n"
      "commands:\n"
      "  run            stream a completion of a prompt (default model: the shipped moert-tiny-coder)\n"
      "  prefill        compute a prompt's KV cache into a file (`run --resume FILE` continues it)\n"
      "  chat           interactive chat with the model's chat template and history\n"
      "  info           the config as understood, parameter count, KV-cache bytes per token\n"
      "  logits         write float32 logits [tokens, vocab] for a token sequence\n"
      "  tokenize       text on stdin -> token ids\n"
      "  detokenize     token ids on stdin -> text\n"
      "  chat-template  JSON messages on stdin -> prompt text\n"
      "  make-model     write a random-weight DeepSeek-V3-shaped checkpoint\n"
      "  quantize       write a copy of a checkpoint with 4-bit experts (--experts q4) for the CPU\n"
      "  serve          an OpenAI-compatible HTTP server (moert-serve, beside moert)\n"
      "  version        print the library version (also --version)\n",
      moert_version_string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    usage(stdout);
    return 0;
  }
  if (cmd == "logits") return cli::cmd_logits(argc, argv);
  if (cmd == "info") return cli::cmd_info(argc, argv);
  if (cmd == "run") return cli::cmd_run(argc, argv);
  if (cmd == "prefill") return cli::cmd_prefill(argc, argv);
  if (cmd == "chat") return cli::cmd_chat(argc, argv);
  if (cmd == "tokenize") return cli::cmd_tokenize(argc, argv);
  if (cmd == "detokenize") return cli::cmd_detokenize(argc, argv);
  if (cmd == "chat-template") return cli::cmd_chat_template(argc, argv);
  if (cmd == "make-model") return cli::cmd_make_model(argc, argv);
  if (cmd == "quantize") return cli::cmd_quantize(argc, argv);
  if (cmd == "serve") {
    // The server is its own program (it links an HTTP library; moert does not): run it in our place.
    const std::string prog = cli::serve_program();
    argv[0] = const_cast<char*>(prog.c_str());
    ::execv(prog.c_str(), argv);
    std::fprintf(stderr,
                 "moert serve: cannot run %s (%s); it is built when libcpp-httplib-dev is installed\n",
                 prog.c_str(), std::strerror(errno));
    return 1;
  }
  if (cmd == "version" || cmd == "--version" || cmd == "-V") {
    std::printf("moert %s (API %d)\n", moert_version_string(), moert_api_version());
    return 0;
  }
  std::fprintf(stderr, "moert: unknown command '%s'\n\n", cmd.c_str());
  usage(stderr);
  return 2;
}
