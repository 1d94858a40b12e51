// The token request (a login, or a keep-alive on a token) and what its answer
// grants, with no I/O and no state: the session decides what to do, these
// functions only read. (What any answer means, ClassifyReply, is in
// upstream/storm_client.h.)
#pragma once

#include <chrono>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "secret/secret.h"
#include "upstream/storm_client.h"
#include "util/status.h"

namespace stormbroker {

// The method that logs in, and keeps a token alive when called with it.
inline constexpr const char* kTokenMethod = "Account/Auth/token";
// The method that ends a token's life upstream.
inline constexpr const char* kExpireMethod = "Account/Auth/expireToken";

// The params of a token request that asks for `token_timeout` of inactivity.
nlohmann::json TokenRequestParams(std::chrono::milliseconds token_timeout);

struct TokenGrant {
  Secret token;
  // How long the token lives without use, counted from when the request was
  // sent: what was asked, or less when the server granted less.
  std::chrono::milliseconds inactivity{};
  // The server granted clearly less than asked: its hard limit is near, so
  // the token dies at the end of `inactivity` whatever keeps it alive.
  bool ends_early = false;
};

// Reads token and expiry from an answer to kTokenMethod, where `asked` was
// the timeout requested. `expires` is the server's wall clock: read against
// the server's own Date header (`wall_now_seconds`, ours, when it sent none)
// it says how long was granted, free of clock skew between us. UNAVAILABLE
// when the answer lacks a token or an expiry time.
Result<TokenGrant> ReadTokenGrant(const StormReply& reply, std::chrono::milliseconds asked, int64_t wall_now_seconds);

}  // namespace stormbroker
