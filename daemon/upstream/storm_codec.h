// The Storm API's wire format, both ways, with no I/O: requests are the
// envelope {"params": {...}}; responses are a result, or an exception map
// ({"error_class": ..., "full_message"/"error_message": ..., extra keys}) that
// may arrive with HTTP 200 or any other status.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace stormbroker {

struct ApiError {
  std::string error_class;   // e.g. "LW::Exception::Authorization"
  std::string message;       // full_message, else error_message
  nlohmann::json extra = nlohmann::json::object();  // every other key, as sent
  long http_status = 200;
};

// What the API answered: a result (any JSON value) or an exception.
struct ApiOutcome {
  bool is_error = false;
  nlohmann::json result;
  ApiError error;
  // Set when the broker answered from its cache (broker/answer_cache.h):
  // how long ago the API gave this answer.
  std::optional<std::chrono::seconds> age = {};
};

// The deepest nesting of arrays and objects accepted in an answer.
constexpr int kMaxJsonDepth = 64;

std::string EncodeEnvelope(const nlohmann::json& params);

// Decodes one HTTP response. A body that is not an API answer (not JSON, or a
// non-200 status without an exception map, or nested deeper than
// kMaxJsonDepth) is an UNAVAILABLE status naming the HTTP status.
Result<ApiOutcome> DecodeResponse(long http_status, std::string_view body);

// The API refused the credential used (password, passcode or token).
bool IsAuthorizationFailure(const ApiError& error);
// A fault that may pass: maintenance, rate limiting, 5xx.
bool IsTransientFailure(const ApiError& error);

}  // namespace stormbroker
