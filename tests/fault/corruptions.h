// The catalogue of broken checkpoints shared by the C++ suite (config + WeightStore + DeepseekNetwork) and
// the C-API suite (moert_model_load): each entry copies a fixture into a temp dir, breaks one thing, and
// says which status the load must end with and what the message must name. "$DIR" in an expected
// substring stands for the temp checkpoint directory.
#pragma once
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "st_image.h"

namespace moert_test {

// Status codes (moert::ErrorCode and moert_status share the numbers).
constexpr int kIo = 2, kFormat = 3, kUnsupported = 4;

inline const char* const kShard1 = "model-00001-of-00002.safetensors";
inline const char* const kShard2 = "model-00002-of-00002.safetensors";
inline const char* const kIndex = "model.safetensors.index.json";

struct Corruption {
  std::string name;
  std::string fixture;  // under tests/data
  std::function<void(const fs::path&)> apply;
  int code;
  std::vector<std::string> expect;  // substrings of the error message
};

inline void truncate_to(const fs::path& p, double fraction) {
  std::string b = read_bytes(p);
  write_bytes(p, b.substr(0, static_cast<size_t>(static_cast<double>(b.size()) * fraction)));
}

// Rewrites one tensor's header entry of `shard` via `edit`, keeping every tensor's bytes.
inline void edit_tensor(const fs::path& shard, const std::string& name,
                        const std::function<void(StTensor&)>& edit) {
  StTensors ts = st_read(shard);
  StTensor* t = st_find(ts, name);
  if (!t) throw std::runtime_error("test helper: no tensor " + name + " in " + shard.string());
  edit(*t);
  write_bytes(shard, st_build(ts));
}

inline void remove_tensor(const fs::path& dir, const std::string& shard, const std::string& name) {
  StTensors ts = st_read(dir / shard);
  ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const StTensor& t) { return t.name == name; }), ts.end());
  write_bytes(dir / shard, st_build(ts));
  json idx = read_json(dir / kIndex);
  idx["weight_map"].erase(name);
  write_json(dir / kIndex, idx);
}

inline void edit_config(const fs::path& dir, const std::function<void(json&)>& edit) {
  json c = read_json(dir / "config.json");
  edit(c);
  write_json(dir / "config.json", c);
}

// Overwrites element `index` of tensor `name` (wherever the index places it) with `bytes`.
inline void poke_tensor(const fs::path& dir, const std::string& name, size_t index,
                        const std::string& bytes) {
  const std::string shard = read_json(dir / kIndex)["weight_map"][name].get<std::string>();
  StTensors ts = st_read(dir / shard);
  StTensor* t = st_find(ts, name);
  if (!t) throw std::runtime_error("test helper: no tensor " + name + " in " + shard);
  t->data.replace(index * bytes.size(), bytes.size(), bytes);
  write_bytes(dir / shard, st_build(ts));
}

inline std::string f32_bytes(float f) {
  std::string b(4, '\0');
  std::memcpy(b.data(), &f, 4);
  return b;
}

// A FIFO (or another special file, or a symlink loop) where a checkpoint file should be.
inline void make_fifo(const fs::path& p) {
  make_fifo_at(p);
}
inline void make_symlink_loop(const fs::path& p) {
  fs::remove(p);
  fs::create_symlink(p.filename().string() + ".loop", p);
  fs::create_symlink(p.filename().string(), p.string() + ".loop");
}

inline std::vector<Corruption> corruptions() {
  std::vector<Corruption> v;
  const std::string fp8 = "tiny-v3-fp8";
  const std::string s1 = kShard1, s2 = kShard2;

  // ---- shard bytes -------------------------------------------------------------------------------
  for (const char* fx : {"tiny-v3-fp8", "tiny-v3-bf16", "tiny-v2-bf16", "tiny-v2lite-bf16"})
    v.push_back({std::string("truncated_shard_") + fx,
                 fx,
                 [s1](const fs::path& d) { truncate_to(d / s1, 0.6); },
                 kFormat,
                 {s1, "tensor '", "truncated"}});
  v.push_back({"truncated_inside_header",
               fp8,
               [s2](const fs::path& d) { truncate_to(d / s2, 0.0005); },
               kFormat,
               {s2, "header length", "runs past the end"}});
  v.push_back({"header_length_beyond_file",
               fp8,
               [s1](const fs::path& d) {
                 std::string b = read_bytes(d / s1);
                 uint64_t n = b.size() * 2;
                 for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((n >> (8 * i)) & 0xff);
                 write_bytes(d / s1, b);
               },
               kFormat,
               {s1, "header length", "runs past the end"}});
  v.push_back({"header_not_json",
               fp8,
               [s1](const fs::path& d) {
                 std::string b = read_bytes(d / s1);
                 b[8] = '#';
                 write_bytes(d / s1, b);
               },
               kFormat,
               {s1, "not valid JSON"}});
  v.push_back({"header_not_object",
               fp8,
               [s2](const fs::path& d) { write_bytes(d / s2, st_image("[1, 2]", "abcd")); },
               kFormat,
               {s2, "JSON object"}});
  v.push_back(
      {"empty_shard", fp8, [s2](const fs::path& d) { write_bytes(d / s2, ""); }, kFormat, {s2, "too short"}});
  v.push_back({"zeroed_shard",
               fp8,
               [s2](const fs::path& d) { write_bytes(d / s2, std::string(read_bytes(d / s2).size(), '\0')); },
               kFormat,
               {s2, "not valid JSON"}});
  v.push_back({"shard_is_directory",
               fp8,
               [s2](const fs::path& d) {
                 fs::remove(d / s2);
                 fs::create_directory(d / s2);
               },
               kIo,
               {s2, "not a regular file"}});
  // A FIFO would block open() forever waiting for a writer; a device is no checkpoint either.
  v.push_back({"shard_is_fifo", fp8, [s2](const fs::path& d) { make_fifo(d / s2); }, kIo, {s2, "a FIFO"}});
  v.push_back({"shard_is_device",
               fp8,
               [s2](const fs::path& d) {
                 fs::remove(d / s2);
                 fs::create_symlink("/dev/null", d / s2);
               },
               kIo,
               {s2, "a character device"}});
  v.push_back({"shard_symlink_loop",
               fp8,
               [s2](const fs::path& d) { make_symlink_loop(d / s2); },
               kIo,
               {s2, "symbolic links"}});
  v.push_back(
      {"index_is_fifo", fp8, [](const fs::path& d) { make_fifo(d / kIndex); }, kIo, {kIndex, "a FIFO"}});
  v.push_back({"index_symlink_loop",
               fp8,
               [](const fs::path& d) { make_symlink_loop(d / kIndex); },
               kIo,
               {kIndex, "symbolic links"}});
  v.push_back({"config_is_fifo",
               fp8,
               [](const fs::path& d) { make_fifo(d / "config.json"); },
               kIo,
               {"config.json", "a FIFO"}});
  v.push_back({"config_is_directory",
               fp8,
               [](const fs::path& d) {
                 fs::remove(d / "config.json");
                 fs::create_directory(d / "config.json");
               },
               kIo,
               {"config.json", "a directory"}});
  v.push_back({"config_symlink_loop",
               fp8,
               [](const fs::path& d) { make_symlink_loop(d / "config.json"); },
               kIo,
               {"config.json", "symbolic links"}});

  v.push_back({"generation_config_is_fifo",
               fp8,
               [](const fs::path& d) { make_fifo(d / "generation_config.json"); },
               kIo,
               {"generation_config.json", "a FIFO"}});
  v.push_back({"generation_config_bad_temperature",
               fp8,
               [](const fs::path& d) { write_bytes(d / "generation_config.json", "{\"temperature\": -1}"); },
               kFormat,
               {"generation_config.json", "'temperature'", "-1"}});
  v.push_back({"generation_config_not_json",
               fp8,
               [](const fs::path& d) { write_bytes(d / "generation_config.json", "{\"top_p\": "); },
               kFormat,
               {"generation_config.json", "not valid JSON"}});

  // ---- weight values (the load-time scan) -----------------------------------------------------------
  v.push_back({"nan_in_bf16_norm",
               "tiny-v3-bf16",
               [](const fs::path& d) { poke_tensor(d, "model.norm.weight", 37, std::string("\xc0\x7f", 2)); },
               kFormat,
               {s2, "model.norm.weight", "non-finite", "index 37"}});
  v.push_back({"inf_in_bf16_weight",
               "tiny-v3-bf16",
               [](const fs::path& d) {
                 poke_tensor(d, "model.layers.0.self_attn.o_proj.weight", 1000, std::string("\x80\xff", 2));
               },
               kFormat,
               {s1, "model.layers.0.self_attn.o_proj.weight", "non-finite", "index 1000"}});
  v.push_back({"inf_in_f32_bias",
               fp8,
               [](const fs::path& d) {
                 poke_tensor(d, "model.layers.1.mlp.gate.e_score_correction_bias", 3, f32_bytes(INFINITY));
               },
               kFormat,
               {s1, "model.layers.1.mlp.gate.e_score_correction_bias", "non-finite", "index 3"}});
  v.push_back(
      {"e4m3_nan_byte",
       fp8,
       [](const fs::path& d) { poke_tensor(d, "model.layers.0.self_attn.o_proj.weight", 4097, "\x7f"); },
       kFormat,
       {s1, "model.layers.0.self_attn.o_proj.weight", "e4m3 NaN", "index 4097"}});
  v.push_back({"e4m3_negative_nan_byte",
               fp8,
               [](const fs::path& d) { poke_tensor(d, "model.layers.0.self_attn.o_proj.weight", 5, "\xff"); },
               kFormat,
               {s1, "model.layers.0.self_attn.o_proj.weight", "e4m3 NaN", "index 5"}});
  v.push_back({"zero_scale",
               fp8,
               [](const fs::path& d) {
                 poke_tensor(d, "model.layers.0.self_attn.o_proj.weight_scale_inv", 1, f32_bytes(0.0f));
               },
               kFormat,
               {s1, "o_proj.weight_scale_inv", "not finite and positive", "index 1"}});
  v.push_back({"negative_scale",
               fp8,
               [](const fs::path& d) {
                 poke_tensor(d, "model.layers.0.self_attn.o_proj.weight_scale_inv", 0, f32_bytes(-0.5f));
               },
               kFormat,
               {s1, "o_proj.weight_scale_inv", "not finite and positive", "index 0"}});
  v.push_back({"nan_scale",
               fp8,
               [](const fs::path& d) {
                 poke_tensor(d, "model.layers.0.self_attn.o_proj.weight_scale_inv", 0, f32_bytes(NAN));
               },
               kFormat,
               {s1, "o_proj.weight_scale_inv", "not finite and positive", "index 0"}});

  // ---- header entries ----------------------------------------------------------------------------
  v.push_back({"offsets_out_of_range",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) {
                   t.offsets_override = {100000000, 100000512};
                 });
               },
               kFormat,
               {s2, "model.norm.weight", "run past the end"}});
  v.push_back({"offsets_reversed",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) { t.offsets_override = {512, 0}; });
               },
               kFormat,
               {s2, "model.norm.weight", "reversed"}});
  v.push_back({"offsets_negative",
               fp8,
               [s2](const fs::path& d) {
                 StTensors ts = st_read(d / s2);
                 std::string img = st_build(ts);
                 // Hand-edit the JSON: nlohmann cannot hold a negative uint64 offset.
                 uint64_t n = 0;
                 for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(img[i]);
                 json h = json::parse(img.substr(8, n));
                 h["model.norm.weight"]["data_offsets"] = {-512, 0};
                 write_bytes(d / s2, st_image(h.dump(), img.substr(8 + n)));
               },
               kFormat,
               {s2, "model.norm.weight", "data_offsets"}});
  v.push_back({"overlapping_tensors",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) { t.offsets_override = {0, 512}; });
               },
               kFormat,
               {s2, "model.norm.weight", "overlap"}});
  v.push_back({"byte_size_not_matching_shape",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) { t.shape = {300}; });
               },
               kFormat,
               {s2, "model.norm.weight", "512 bytes", "needs 600"}});
  v.push_back({"unknown_dtype",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) {
                   t.dtype = "F64";
                   t.shape = {64};
                 });
               },
               kFormat,
               {s2, "model.norm.weight", "F64"}});
  v.push_back({"negative_dimension",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) { t.shape = {-256}; });
               },
               kFormat,
               {s2, "model.norm.weight", "negative"}});

  // ---- tensors vs. what the model needs ------------------------------------------------------------
  v.push_back({"wrong_dtype_norm",
               fp8,
               [s2](const fs::path& d) {
                 edit_tensor(d / s2, "model.norm.weight", [](StTensor& t) {
                   t.dtype = "I32";
                   t.shape = {128};
                 });
               },
               kFormat,
               {s2, "model.norm.weight", "dtype I32", "expected"}});
  v.push_back({"wrong_dtype_scale",
               fp8,
               [s1](const fs::path& d) {
                 edit_tensor(d / s1, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv",
                             [](StTensor& t) { t.dtype = "I32"; });
               },
               kFormat,
               {s1, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv", "I32", "F32"}});
  v.push_back({"wrong_shape",
               fp8,
               [s1](const fs::path& d) {
                 edit_tensor(d / s1, "model.layers.0.input_layernorm.weight", [](StTensor& t) {
                   t.shape = {128, 2};
                 });
               },
               kFormat,
               {s1, "model.layers.0.input_layernorm.weight", "[128, 2]", "expected [256]"}});
  v.push_back({"wrong_scale_shape",
               fp8,
               [s1](const fs::path& d) {
                 edit_tensor(d / s1, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv", [](StTensor& t) {
                   t.shape = {4, 8};
                 });
               },
               kFormat,
               {s1, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv", "[4, 8]", "expected [8, 4]"}});
  v.push_back({"missing_tensor",
               fp8,
               [s1](const fs::path& d) { remove_tensor(d, s1, "model.layers.1.self_attn.kv_b_proj.weight"); },
               kFormat,
               {"$DIR", "model.layers.1.self_attn.kv_b_proj.weight", "missing"}});
  v.push_back({"missing_scale",
               fp8,
               [s1](const fs::path& d) {
                 remove_tensor(d, s1, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv");
               },
               kFormat,
               {"$DIR", "model.layers.1.self_attn.kv_b_proj.weight_scale_inv", "missing"}});
  v.push_back({"missing_final_norm_bf16",
               "tiny-v3-bf16",
               [s2](const fs::path& d) { remove_tensor(d, s2, "model.norm.weight"); },
               kFormat,
               {"$DIR", "model.norm.weight", "missing"}});

  // ---- the index -----------------------------------------------------------------------------------
  v.push_back({"index_names_missing_shard",
               fp8,
               [](const fs::path& d) {
                 json idx = read_json(d / kIndex);
                 idx["weight_map"]["model.norm.weight"] = "model-00003-of-00002.safetensors";
                 write_json(d / kIndex, idx);
               },
               kIo,
               {"model-00003-of-00002.safetensors", "model.norm.weight"}});
  v.push_back({"index_lists_absent_tensor",
               fp8,
               [](const fs::path& d) {
                 json idx = read_json(d / kIndex);
                 idx["weight_map"]["model.layers.0.mlp.extra.weight"] = kShard1;
                 write_json(d / kIndex, idx);
               },
               kFormat,
               {kShard1, "model.layers.0.mlp.extra.weight", "missing from the shard"}});
  v.push_back({"index_not_json",
               fp8,
               [](const fs::path& d) { write_bytes(d / kIndex, "{\"weight_map\": {"); },
               kFormat,
               {kIndex, "not valid JSON"}});
  v.push_back({"index_without_weight_map",
               fp8,
               [](const fs::path& d) { write_bytes(d / kIndex, "{\"metadata\": {}}"); },
               kFormat,
               {kIndex, "weight_map"}});
  v.push_back({"index_entry_not_string",
               fp8,
               [](const fs::path& d) {
                 json idx = read_json(d / kIndex);
                 idx["weight_map"]["model.norm.weight"] = 7;
                 write_json(d / kIndex, idx);
               },
               kFormat,
               {kIndex, "model.norm.weight"}});
  v.push_back({"index_path_escape",
               fp8,
               [](const fs::path& d) {
                 json idx = read_json(d / kIndex);
                 idx["weight_map"]["model.norm.weight"] = "../model-00002-of-00002.safetensors";
                 write_json(d / kIndex, idx);
               },
               kFormat,
               {kIndex, "model.norm.weight", "invalid file"}});
  v.push_back({"no_weights_at_all",
               fp8,
               [s1, s2](const fs::path& d) {
                 fs::remove(d / kIndex);
                 fs::remove(d / s1);
                 fs::remove(d / s2);
               },
               kIo,
               {"$DIR", "model.safetensors"}});

  // ---- config.json ---------------------------------------------------------------------------------
  v.push_back({"config_missing",
               fp8,
               [](const fs::path& d) { fs::remove(d / "config.json"); },
               kIo,
               {"config.json"}});
  v.push_back({"config_not_json",
               fp8,
               [](const fs::path& d) { write_bytes(d / "config.json", "{\"model_type\": "); },
               kFormat,
               {"config.json", "not valid JSON"}});
  v.push_back({"config_unknown_model_type",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["model_type"] = "llama"; }); },
               kUnsupported,
               {"config.json", "model_type", "llama"}});
  v.push_back({"config_unknown_scoring_func",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["scoring_func"] = "tanh"; }); },
               kUnsupported,
               {"config.json", "scoring_func", "tanh"}});
  v.push_back({"config_missing_field",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c.erase("kv_lora_rank"); }); },
               kUnsupported,
               {"config.json", "kv_lora_rank", "missing"}});
  v.push_back({"config_hidden_size_disagrees",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["hidden_size"] = 384; }); },
               kFormat,
               {"tensor '", "has shape", "384"}});
  v.push_back({"config_vocab_disagrees",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["vocab_size"] = 4096; }); },
               kFormat,
               {"tensor '", "expected [4096, 256]"}});
  v.push_back({"config_more_layers_than_checkpoint",
               "tiny-v3-bf16",
               [](const fs::path& d) { edit_config(d, [](json& c) { c["num_hidden_layers"] = 5; }); },
               kFormat,
               {"config.json", "num_hidden_layers 5", "layer 2 is missing"}});
  // Fewer layers in the config than in the shards would silently run a truncated model.
  v.push_back({"config_fewer_layers_than_checkpoint",
               "tiny-v3-bf16",
               [](const fs::path& d) { edit_config(d, [](json& c) { c["num_hidden_layers"] = 1; }); },
               kFormat,
               {"config.json", "num_hidden_layers 1", "hold layers 0..1", "layer 1 is beyond the config"}});
  v.push_back({"config_nextn_disagrees",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["num_nextn_predict_layers"] = 0; }); },
               kFormat,
               {"config.json", "num_nextn_predict_layers 0", "layer 3 is beyond the config"}});
  v.push_back({"config_more_nextn_than_checkpoint",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["num_nextn_predict_layers"] = 2; }); },
               kFormat,
               {"config.json", "num_nextn_predict_layers 2", "layer 4 is missing"}});
  v.push_back({"config_zero_rms_norm_eps",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["rms_norm_eps"] = 0; }); },
               kUnsupported,
               {"config.json", "rms_norm_eps", "must be positive"}});
  v.push_back({"config_negative_rms_norm_eps",
               fp8,
               [](const fs::path& d) { edit_config(d, [](json& c) { c["rms_norm_eps"] = -1e-6; }); },
               kUnsupported,
               {"config.json", "rms_norm_eps", "must be positive"}});
  return v;
}

inline std::string expand(const std::string& pattern, const std::string& dir) {
  std::string s = pattern;
  auto p = s.find("$DIR");
  if (p != std::string::npos) s.replace(p, 4, dir);
  return s;
}

}  // namespace moert_test
