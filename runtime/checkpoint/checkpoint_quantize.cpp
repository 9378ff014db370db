#include "checkpoint/checkpoint_quantize.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "checkpoint/q4_quantize.h"
#include "config/model_config.h"
#include "cpu/dequant.h"
#include "util/error.h"
#include "util/file_io.h"
#include "weights/safetensors_writer.h"
#include "weights/weight_store.h"

namespace moert {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// The tensors moert_q4 quantises: every routed and shared expert's gate, up and down projection (the
// MTP layers' included, which load through the same code).
bool is_expert_weight(const std::string& name) {
  static const std::regex re(
      R"(model\.layers\.\d+\.mlp\.(experts\.\d+|shared_experts)\.(gate|up|down)_proj\.weight)");
  return std::regex_match(name, re);
}

// The expert weight as fp32 [n, k]: e4m3 times its 128x128 block scales, or bf16/f16/f32 widened.
std::vector<float> dequantize(const WeightStore& store, const std::string& name, const TensorInfo& t) {
  if (t.shape.size() != 2)
    fail(ErrorCode::kFormat, store.file_of(name) + ": tensor '" + name + "' has shape " +
                                 shape_to_string(t.shape) + ", expected a matrix");
  const int64_t n = t.shape[0], k = t.shape[1];
  kernels::WeightRef r;
  r.data = t.data;
  r.n = n;
  r.k = k;
  r.ld = k;
  r.type = t.dtype;  // the kernels' weight types are the checkpoint's
  switch (t.dtype) {
    case DType::kF32:
    case DType::kBF16:
    case DType::kF16:
      break;
    case DType::kF8E4M3: {
      const int64_t bn = (n + 127) / 128, bk = (k + 127) / 128;
      const TensorInfo& s = store.require(name + "_scale_inv", {DType::kF32}, {bn, bk});
      r.scale = reinterpret_cast<const float*>(s.data);
      r.scale_ld = bk;
      break;
    }
    default:
      fail(ErrorCode::kFormat, store.file_of(name) + ": tensor '" + name + "' has dtype " +
                                   dtype_name(t.dtype) + ", expected F8_E4M3, BF16, F16 or F32");
  }
  std::vector<float> out(static_cast<size_t>(n * k));
  for (int64_t row = 0; row < n; ++row) kernels::dequant_row(r, row, 0, k, out.data() + row * k);
  return out;
}

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, path + ": cannot create");
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) fail(ErrorCode::kIo, path + ": write failed");
}

}  // namespace

void quantize_checkpoint(const std::string& model_dir, const std::string& out_dir, const QuantizeSpec& spec) {
  if (spec.group != 32 && spec.group != 64 && spec.group != 128)
    fail(ErrorCode::kInvalidArgument,
         "group size " + std::to_string(spec.group) + " is not one of 32, 64, 128");
  // The source: its config (validated as a load would) and its tensors.
  const std::string config_path = model_dir + "/config.json";
  const std::string config_text = read_regular_file(config_path);
  const ModelConfig cfg = parse_model_config(config_text, config_path);
  if (cfg.quant.expert_q4_group > 0)
    fail(ErrorCode::kInvalidArgument, config_path + ": the checkpoint is already moert_q4");
  json config = json::parse(config_text);
  const WeightStore store(model_dir);

  std::error_code ec;
  if (fs::exists(out_dir, ec) && fs::equivalent(fs::path(model_dir), fs::path(out_dir), ec))
    fail(ErrorCode::kInvalidArgument, out_dir + ": the output directory is the model directory");
  fs::create_directories(out_dir, ec);
  if (ec) fail(ErrorCode::kIo, out_dir + ": cannot create the directory: " + ec.message());

  // The source's shards, each written again under its own name with its tensors.
  std::map<std::string, std::vector<std::pair<std::string, const TensorInfo*>>> shards;
  int64_t experts_total = 0;
  for (const auto& [name, info] : store.tensors_by_name()) {
    shards[fs::path(store.file_of(name)).filename().string()].emplace_back(name, info);
    experts_total += is_expert_weight(name);
  }
  if (experts_total == 0)
    fail(ErrorCode::kInvalidArgument, model_dir + ": the checkpoint has no expert weights to quantise");
  const bool indexed = path_exists(model_dir + "/model.safetensors.index.json");

  json weight_map = json::object();
  uint64_t total_size = 0;
  int64_t done = 0, shard_no = 0;
  std::string stage;
  for (const auto& [file, tensors] : shards) {
    ++shard_no;
    SafetensorsWriter w;
    for (const auto& [name, info] : tensors) {
      // Scales of the weights quantised here describe the FP8 original: not carried over.
      if (name.ends_with("_scale_inv") && is_expert_weight(name.substr(0, name.size() - 10))) continue;
      if (!is_expert_weight(name)) {
        w.add(name, info->dtype, info->shape, std::vector<uint8_t>(info->data, info->data + info->nbytes));
        continue;
      }
      const std::vector<float> f = dequantize(store, name, *info);
      const int64_t n = info->shape[0], k = info->shape[1];
      if (k % spec.group != 0)
        fail(ErrorCode::kUnsupported, store.file_of(name) + ": tensor '" + name + "' has " +
                                          std::to_string(k) + " columns, which do not split into groups of " +
                                          std::to_string(spec.group) + " (try a smaller --group-size)");
      const Q4Weight q = quantize_q4(f.data(), n, k, spec.group, spec.search, spec.threads);
      w.add(name, DType::kU8, {n, k / 2}, bytes_of(q.codes));
      w.add(name + "_scale", DType::kF16, {n, k / spec.group}, bytes_of(q.scale));
      w.add(name + "_min", DType::kF16, {n, k / spec.group}, bytes_of(q.min));
      ++done;
      if (spec.progress) {
        stage = "shard " + std::to_string(shard_no) + " of " + std::to_string(shards.size()) + ": " +
                std::to_string(done) + " of " + std::to_string(experts_total) + " expert weights";
        if (!spec.progress(0.95 * static_cast<double>(done) / static_cast<double>(experts_total),
                           stage.c_str()))
          fail(ErrorCode::kCancelled, "quantize cancelled");
      }
    }
    w.write(out_dir + "/" + file);
    total_size += w.total_bytes();
    for (const std::string& name : w.names()) weight_map[name] = file;
  }
  if (indexed || shards.size() > 1) {
    json index;
    index["metadata"] = {{"total_size", total_size}};
    index["weight_map"] = weight_map;
    write_text(out_dir + "/model.safetensors.index.json", index.dump(2) + "\n");
  }

  // config.json with moert_q4's quantization_config (the original kept as its base).
  json qc;
  qc["quant_method"] = "moert_q4";
  qc["bits"] = 4;
  qc["group_size"] = spec.group;
  qc["modules"] = "experts";
  auto base = config.find("quantization_config");
  qc["base"] = base == config.end() ? json(nullptr) : *base;
  config["quantization_config"] = qc;
  write_text(out_dir + "/config.json", config.dump(2) + "\n");
  // The files a load or a tokenizer reads besides the weights, as they are.
  for (const char* name : {"generation_config.json", "tokenizer.json", "tiktoken.model",
                           "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}) {
    const std::string src = model_dir + "/" + name;
    if (path_exists(src)) write_text(out_dir + "/" + name, read_regular_file(src));
  }
  if (spec.progress && !spec.progress(1.0, "done")) fail(ErrorCode::kCancelled, "quantize cancelled");
}

}  // namespace moert
