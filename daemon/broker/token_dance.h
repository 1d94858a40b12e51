// The API's credential methods the broker answers itself on the doors that
// speak the API's HTTP (the token dance): a client that logs in first keeps
// working, and the account's token never leaves the broker.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace stormbroker {

enum class TokenDance { kNone, kToken, kExpireToken };
// Account/Auth/token and Account/Auth/expireToken, in any case.
TokenDance TokenDanceOf(std::string_view method);
// Account/Auth/token's result: a handle that means nothing upstream (the
// client sends it back as its password, which the broker ignores) and the
// account's own inactivity deadline (seconds since the epoch).
nlohmann::json TokenHandle(long long expires);
// Account/Auth/expireToken's result: the account's token lives on, for the
// other callers.
nlohmann::json TokenExpired();

}  // namespace stormbroker
