#include "upstream/storm_codec.h"

#include <algorithm>

namespace stormbroker {
namespace {

// The deepest nesting of brackets outside strings: one pass, no allocation
// (cheaper than asking the parser, which this precedes on every answer).
int NestingDepth(std::string_view json) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

std::string EncodeEnvelope(const nlohmann::json& params) {
  nlohmann::json envelope = {{"params", params.is_null() ? nlohmann::json::object() : params}};
  return envelope.dump();
}

Result<ApiOutcome> DecodeResponse(long http_status, std::string_view body) {
  // Everything after the parser walks the value recursively (conversions to
  // protobuf among them): an upstream must not be able to exhaust the stack.
  if (NestingDepth(body) > kMaxJsonDepth) {
    return Unavailable("upstream answered HTTP " + std::to_string(http_status) + " with JSON nested deeper than " +
                       std::to_string(kMaxJsonDepth) + " levels");
  }
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Unavailable("upstream answered HTTP " + std::to_string(http_status) +
                       " with a body that is not JSON (" + std::to_string(body.size()) + " bytes)");
  }
  ApiOutcome outcome;
  if (parsed.is_object() && parsed.contains("error_class") && parsed["error_class"].is_string()) {
    outcome.is_error = true;
    ApiError& error = outcome.error;
    error.http_status = http_status;
    error.error_class = parsed["error_class"].get<std::string>();
    for (const char* key : {"full_message", "error_message"}) {
      if (error.message.empty() && parsed.contains(key) && parsed[key].is_string()) {
        error.message = parsed[key].get<std::string>();
      }
    }
    for (auto& [key, value] : parsed.items()) {
      if (key != "error_class" && key != "full_message" && key != "error_message") {
        error.extra[key] = value;
      }
    }
    return outcome;
  }
  if (http_status != 200) {
    return Unavailable("upstream answered HTTP " + std::to_string(http_status) +
                       " without an API exception");
  }
  outcome.result = std::move(parsed);
  return outcome;
}

bool IsAuthorizationFailure(const ApiError& error) {
  return error.http_status == 401 || error.error_class == "LW::Exception::Authorization";
}

bool IsTransientFailure(const ApiError& error) {
  return error.http_status >= 500 || error.error_class == "LW::Exception::API::Maintenance" ||
         error.error_class == "LW::Exception::API::RateLimit";
}

}  // namespace stormbroker
