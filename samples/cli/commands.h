#pragma once

namespace cli {
int cmd_logits(int argc, char** argv);
int cmd_info(int argc, char** argv);
}  // namespace cli
