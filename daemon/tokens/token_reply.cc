#include "tokens/token_reply.h"

#include <algorithm>
#include <string>

namespace stormbroker {

using std::chrono::milliseconds;

nlohmann::json TokenRequestParams(milliseconds token_timeout) {
  return {{"timeout", token_timeout.count() / 1000}};
}

Result<TokenGrant> ReadTokenGrant(const StormReply& reply, milliseconds asked, int64_t wall_now_seconds) {
  const nlohmann::json& result = reply.outcome.result;
  if (reply.outcome.is_error || !result.is_object() || !result.contains("token") || !result["token"].is_string() ||
      result["token"].get_ref<const std::string&>().empty() || !result.contains("expires") ||
      !result["expires"].is_number()) {
    return Unavailable("the Storm API answered " + std::string(kTokenMethod) + " without a token and expiry time");
  }
  int64_t expires = result["expires"].get<int64_t>();
  int64_t server_now = reply.server_time.value_or(wall_now_seconds);
  TokenGrant grant;
  grant.inactivity = std::min(asked, milliseconds(std::max<int64_t>(0, expires - server_now) * 1000));
  grant.ends_early = grant.inactivity + std::chrono::seconds(2) < asked;
  grant.token = Secret(result["token"].get_ref<const std::string&>());
  return grant;
}

}  // namespace stormbroker
