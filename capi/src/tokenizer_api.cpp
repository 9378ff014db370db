// moert_tokenizer_*: the tokenizer on its own or of a loaded model.
#include <filesystem>
#include <string_view>

#include "handles.h"
#include "util/file_io.h"

using moert::ErrorCode;
using moert::fail;
using moert::capi::guarded;
using moert::capi::require;
using moert::capi::write_string;

extern "C" {

MOERT_API moert_status moert_tokenizer_load(const char* tokenizer_json_path, const char* config_path,
                                            moert_tokenizer** out) {
  return guarded([&] {
    require(tokenizer_json_path, "tokenizer_json_path");
    require(out, "out");
    std::string cfg = config_path ? config_path : "";
    if (!config_path) {
      const auto beside = std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json";
      if (moert::path_exists(beside.string())) cfg = beside.string();
    }
    auto t = std::make_unique<moert_tokenizer>();
    t->impl = std::make_shared<const moert::Tokenizer>(moert::Tokenizer::load(tokenizer_json_path, cfg));
    *out = t.release();
  });
}

MOERT_API moert_status moert_model_tokenizer(const moert_model* model, moert_tokenizer** out) {
  return guarded([&] {
    require(model, "model");
    require(out, "out");
    model->service->require_tokenizer();
    auto t = std::make_unique<moert_tokenizer>();
    t->impl = model->service->tokenizer();
    *out = t.release();
  });
}

MOERT_API void moert_tokenizer_free(moert_tokenizer* tokenizer) {
  delete tokenizer;
}

MOERT_API moert_status moert_tokenizer_info_int(const moert_tokenizer* tokenizer, const char* key,
                                                int64_t* out) {
  return guarded([&] {
    const moert::Tokenizer& t = *require(tokenizer, "tokenizer")->impl;
    const std::string k = require(key, "key");
    require(out, "out");
    if (k == "vocab_size")
      *out = t.vocab_size();
    else if (k == "bos_token_id")
      *out = t.bos_id();
    else if (k == "eos_token_id")
      *out = t.eos_id();
    else if (k == "add_bos_default")
      *out = t.add_bos_default() ? 1 : 0;
    else
      fail(ErrorCode::kInvalidArgument, "unknown tokenizer info key '" + k + "'");
  });
}

MOERT_API moert_status moert_tokenize(const moert_tokenizer* tokenizer, const char* text, size_t text_len,
                                      int32_t add_bos, int32_t parse_special, int32_t* ids, size_t cap,
                                      size_t* n_ids) {
  return guarded([&] {
    const moert::Tokenizer& t = *require(tokenizer, "tokenizer")->impl;
    if (!text && text_len) require(text, "text");
    const bool bos = add_bos < 0 ? t.add_bos_default() : add_bos != 0;
    const std::vector<int32_t> out =
        t.encode(std::string_view(text ? text : "", text_len), bos, parse_special != 0);
    if (!ids && cap == 0) {
      if (n_ids) *n_ids = out.size();
      return;
    }
    require(ids, "ids");
    if (cap < out.size())
      fail(ErrorCode::kInvalidArgument,
           "ids buffer holds " + std::to_string(cap) + " ids; " + std::to_string(out.size()) + " needed");
    std::copy(out.begin(), out.end(), ids);
    if (n_ids) *n_ids = out.size();
  });
}

MOERT_API moert_status moert_detokenize(const moert_tokenizer* tokenizer, const int32_t* ids, size_t n,
                                        int32_t skip_special, char* buf, size_t cap, size_t* needed) {
  return guarded([&] {
    const moert::Tokenizer& t = *require(tokenizer, "tokenizer")->impl;
    if (n) require(ids, "ids");
    // HF drops unknown ids silently; moert says which id was wrong (a caller bug, or another model's ids).
    for (size_t i = 0; i < n; ++i)
      if (!t.id_to_token(ids[i]))
        fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(ids[i]) + " at position " +
                                              std::to_string(i) + " is not in the tokenizer's vocabulary (" +
                                              std::to_string(t.vocab_size()) + " ids)");
    write_string(t.decode(std::vector<int32_t>(ids, ids + n), skip_special != 0), buf, cap, needed);
  });
}

MOERT_API moert_status moert_apply_chat_template(const moert_tokenizer* tokenizer, const char* messages_json,
                                                 int32_t add_generation_prompt, char* buf, size_t cap,
                                                 size_t* needed) {
  return guarded([&] {
    const moert::Tokenizer& t = *require(tokenizer, "tokenizer")->impl;
    require(messages_json, "messages_json");
    write_string(t.apply_chat_template(messages_json, add_generation_prompt != 0), buf, cap, needed);
  });
}

}  // extern "C"
