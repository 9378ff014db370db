// An OpenAI error object ({"error": {"message", "type", "param", "code"}}) with its HTTP status. Every
// failure the server reports is one of these: bad input is a 4xx naming the field, never a 500.
#pragma once
#include <stdexcept>
#include <string>

namespace serve {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string param;  // the request field at fault ("" = none)
  std::string code;   // OpenAI's code ("model_not_found", "invalid_api_key"; "" = null)
};

// 400 naming the field.
[[noreturn]] inline void bad_field(const std::string& param, const std::string& message) {
  throw ApiError(400, param + ": " + message, param);
}

// The JSON body of an error (OpenAI's type from the status).
std::string error_body(int status, const std::string& message, const std::string& param = "",
                       const std::string& code = "");
inline std::string error_body(const ApiError& e) {
  return error_body(e.status, e.what(), e.param, e.code);
}

}  // namespace serve
