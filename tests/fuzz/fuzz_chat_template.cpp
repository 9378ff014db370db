// libFuzzer target: moert's jinja engine on arbitrary templates and messages. The input is a template, then
// (after the first NUL byte, if any) the messages JSON. Parsing either succeeds or throws
// Error(kUnsupported); rendering either returns or throws Error(kInvalidArgument); never a crash, a hang,
// or memory beyond the engine's bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/chat_template_jinja.h"
#include "tokenizer/jinja.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string tmpl = input.substr(0, nul);
  const std::string messages =
      nul == std::string::npos ? R"([{"role":"user","content":"Hi"}])" : input.substr(nul + 1);
  try {
    const moert::tok::jinja::Template t(tmpl);
    nlohmann::ordered_json vars;
    vars["bos_token"] = "<s>";
    vars["eos_token"] = "</s>";
    try {
      (void)moert::tok::render_jinja_chat(t, vars, messages, true);
    } catch (const moert::Error& e) {
      if (e.code() != moert::ErrorCode::kInvalidArgument) std::abort();
    }
  } catch (const moert::Error& e) {
    if (e.code() != moert::ErrorCode::kUnsupported) std::abort();
  }
  return 0;
}
