// Storm API exceptions as the emulator sends them: a map with error_class,
// both message keys (the seed document's error_message and the public page's
// full_message) and the class's extra keys, with an HTTP status.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace fake_storm {

struct Reply {
  int http_status = 200;
  nlohmann::json body;
  std::string encoding = "json";  // "json" or "yaml": how the front renders `body`
  bool reset = false;             // drop the connection instead of answering
  long long delay_ms = 0;         // wait this long before answering
  // A Retry-After header: seconds from now, sent as a number or an HTTP date.
  std::optional<long long> retry_after_s = {};
  bool retry_after_as_date = false;
};

// `error_class` without the "LW::Exception::" prefix, e.g. "API::InvalidMethod".
Reply ApiException(int http_status, const std::string& error_class, const std::string& message,
                   nlohmann::json extra = nlohmann::json::object());

}  // namespace fake_storm
