// moert info: what moert understood of a checkpoint.
#include <cstdio>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "moert/moert.h"

namespace cli {

int cmd_info(int argc, char** argv) {
  const Command cmd{"info",
                    "usage: moert info [-m|--model DIR]\n"
                    "The config as moert understood it, the parameter count, KV-cache bytes per token and\n"
                    "the CPU kernels' paths (instruction set, AMX tiles).\n",
                    {{"model", true, {"-m"}}}};
  Args a(argc, argv, 2, cmd);
  const std::string dir = a.get("model", default_model_dir());
  moert_options* opts = nullptr;
  check(moert_options_create(&opts), "options");
  check(moert_options_set_int(opts, "kv_cache_bytes", 1 << 20), "options");
  moert_model* model = nullptr;
  check(moert_model_load(dir.c_str(), opts, nullptr, nullptr, &model), "loading the model");
  moert_options_free(opts);
  size_t need = 0;
  check(moert_model_config_json(model, nullptr, 0, &need), "config");
  std::vector<char> buf(need);
  check(moert_model_config_json(model, buf.data(), buf.size(), &need), "config");
  std::printf("model: %s\nconfig (as understood):\n%s\n", dir.c_str(), buf.data());
  auto info = [&](const char* key) {
    int64_t v = 0;
    check(moert_model_info_int(model, key, &v), key);
    return static_cast<long long>(v);
  };
  const long long params = info("parameters");
  std::printf("parameters: %lld (%.2f M)\n", params, params / 1e6);
  std::printf("mtp layers loaded: %lld\n", info("num_mtp_layers"));
  std::printf("kv cache bytes per token: %lld (kv_lora_rank + qk_rope_head_dim fp32 values per layer)\n",
              info("kv_bytes_per_token"));
  static const char* const kIsa[] = {"portable", "avx2", "avx512"};
  const long long isa = info("cpu_isa");
  std::printf("cpu kernels: %s, amx-bf16 tiles %s, q4 int8 activations %s, amx-int8 tiles %s\n",
              isa >= 0 && isa <= 2 ? kIsa[isa] : "none", info("cpu_amx_bf16") ? "yes" : "no",
              info("cpu_q4_int8") ? "yes" : "no", info("cpu_amx_int8") ? "yes" : "no");
  moert_model_free(model);
  return 0;
}

}  // namespace cli
