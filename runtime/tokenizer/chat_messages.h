// The messages argument of apply_chat_template, shared by the template renderers: a JSON array of messages,
// or an object with such a "messages" array.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace moert::tok {

// The messages array of messages_json. Throws Error(kInvalidArgument) ("chat template: ...") for text that
// is not JSON, an object without "messages", or messages that are not an array.
nlohmann::json parse_chat_messages(const std::string& messages_json);

}  // namespace moert::tok
