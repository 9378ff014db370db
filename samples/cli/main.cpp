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
      "  logits   --model DIR --tokens 5,17,3 --out FILE [--decode-from K] [--activations fp32|fp8] "
      "[--threads N]\n"
      "           write float32 logits [tokens, vocab] (little-endian, row-major)\n"
      "  info     [--model DIR]   the config as understood, parameter count, KV-cache bytes per token\n"
      "  run      [--model DIR] --prompt TEXT|--prompt-file FILE|- [--max-tokens N] [--temperature T] "
      "[--top-k K] [--top-p P]\n"
      "           [--min-p P] [--seed S] [--stop STR] [--ignore-eos] [--threads N] [--quiet] [--no-echo]\n"
      "           [--batch-invariant]\n"
      "           [--ep-size N [--ep-redundant R] [--eplb-interval STEPS] [--ep-max-ranks M]\n"
      "            [--ep-overlap|--no-ep-overlap]]\n"
      "           stream a completion (default model: the shipped moert-tiny-coder). With --ep-size N, run "
      "under\n"
      "           mpirun -np N: experts spread over N processes, every rank runs the prompt, rank 0 prints\n"
      "  chat     [--model DIR] [--system TEXT] ...   interactive chat with the model's chat template\n"
      "  tokenize     --tokenizer FILE|--model DIR [--bos] [--no-special]  text on stdin -> ids\n"
      "  detokenize   --tokenizer FILE|--model DIR [--skip-special]        ids on stdin -> text\n"
      "  chat-template --model DIR [--no-generation-prompt]   JSON messages on stdin -> prompt text\n"
      "  make-model --out DIR [--hidden 7168 --layers 3 --dense-layers 1 --heads 128 --q-lora 1536\n"
      "           --kv-lora 512 --experts 256 --moe-inter 2048 --inter 18432 --top-k 8 --groups 8\n"
      "           --topk-groups 4 --shared 1 --vocab 129280 --mtp 0 --seed 1 --bf16]\n"
      "           write a random-weight checkpoint of that shape (FP8 unless --bf16)\n"
      "  version  print the library version\n",
      moert_version_string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage();
    return argc < 2 ? 1 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "logits") return cli::cmd_logits(argc, argv);
  if (cmd == "info") return cli::cmd_info(argc, argv);
  if (cmd == "run") return cli::cmd_run(argc, argv);
  if (cmd == "chat") return cli::cmd_chat(argc, argv);
  if (cmd == "tokenize") return cli::cmd_tokenize(argc, argv);
  if (cmd == "detokenize") return cli::cmd_detokenize(argc, argv);
  if (cmd == "chat-template") return cli::cmd_chat_template(argc, argv);
  if (cmd == "make-model") return cli::cmd_make_model(argc, argv);
  if (cmd == "version") {
    std::printf("moert %s (API %d)\n", moert_version_string(), moert_api_version());
    return 0;
  }
  std::fprintf(stderr, "moert: unknown command '%s'\n\n", cmd.c_str());
  usage();
  return 1;
}
