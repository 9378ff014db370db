#pragma once

namespace cli {
int cmd_logits(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_prefill(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_chat_template(int argc, char** argv);
int cmd_make_model(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
}  // namespace cli
