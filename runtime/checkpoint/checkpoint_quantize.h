// `moert quantize`: writes a copy of a DeepSeek checkpoint whose routed and shared expert weights are
// moert_q4 (4-bit, q4_quantize.h), every other tensor copied byte for byte, in the same shards with an
// index; config.json's quantization_config becomes moert_q4's, with the original kept as its "base"
// (docs/DESIGN.md, "Weights"). The source may be FP8 (e4m3 with 128x128 weight_scale_inv) or
// BF16/F16/F32: expert weights are dequantised to fp32 first.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "checkpoint/q4_quantize.h"

namespace moert {

struct QuantizeSpec {
  int64_t group = 32;                 // columns per scale group: 32, 64 or 128
  int threads = 0;                    // quantiser threads (0 = all cores)
  Q4Search search = Q4Search::kRmse;  // kNearest only to measure what the search buys (bench/q4_bench)
  // Called after each tensor group written with the fraction done and a stage; false cancels
  // (Error(kCancelled); the output directory is left incomplete).
  std::function<bool(double fraction, const char* stage)> progress;
};

// Reads model_dir, creates out_dir (if needed) and writes the quantised checkpoint there. Errors:
// kInvalidArgument (bad group, out_dir the same as model_dir, a checkpoint already moert_q4), kFormat /
// kUnsupported (as loading the source would give; an expert weight whose columns do not split into
// groups), kIo, kCancelled.
void quantize_checkpoint(const std::string& model_dir, const std::string& out_dir, const QuantizeSpec& spec);

}  // namespace moert
