#include "api_error.h"

namespace fake_storm {

Reply ApiException(int http_status, const std::string& error_class, const std::string& message,
                   nlohmann::json extra) {
  nlohmann::json body = std::move(extra);
  body["error_class"] = "LW::Exception::" + error_class;
  body["error_message"] = message;
  body["full_message"] = message;
  return Reply{http_status, std::move(body)};
}

}  // namespace fake_storm
