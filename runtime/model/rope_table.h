// RoPE inverse frequencies, plain or YaRN, computed in fp32 the way transformers does for DeepSeek.
#pragma once
#include <vector>

#include "config/model_config.h"

namespace moert {

std::vector<float> rope_inv_freq(const ModelConfig& cfg);

}  // namespace moert
