#include "upstream/storm_codec.h"

#include <limits>

#include "encoding/document_bounds.h"

namespace stormbroker {

std::string EncodeEnvelope(const nlohmann::json& params) {
  nlohmann::json envelope = {{"params", params.is_null() ? nlohmann::json::object() : params}};
  return envelope.dump();
}

Result<ApiOutcome> DecodeResponse(long http_status, std::string_view body) {
  // Everything after the parser walks the value recursively (conversions to
  // protobuf among them): an upstream must not be able to exhaust the stack.
  // Its size is bounded by upstream.max_response_size, not here.
  auto read = ParseBoundedJson(body, DocumentBounds{kMaxJsonDepth, std::numeric_limits<size_t>::max()});
  if (!read.ok()) {
    return Unavailable("upstream answered HTTP " + std::to_string(http_status) + " with a body of " +
                       std::to_string(body.size()) + " bytes that is unusable: " + read.status().message());
  }
  nlohmann::json parsed = std::move(read).value();
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
