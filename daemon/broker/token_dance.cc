#include "broker/token_dance.h"

#include <sys/random.h>

#include "util/ascii.h"

namespace stormbroker {
namespace {

// 32 letters and digits that mean nothing upstream.
std::string NewHandle() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  std::string handle;
  for (unsigned char b : bytes) handle += kAlphabet[b % (sizeof kAlphabet - 1)];
  return handle;
}

}  // namespace

TokenDance TokenDanceOf(std::string_view method) {
  std::string lower = AsciiLower(method);
  if (lower == "account/auth/token") return TokenDance::kToken;
  if (lower == "account/auth/expiretoken") return TokenDance::kExpireToken;
  return TokenDance::kNone;
}

nlohmann::json TokenHandle(long long expires) { return {{"token", NewHandle()}, {"expires", expires}}; }

nlohmann::json TokenExpired() { return {{"expired", 1}}; }

}  // namespace stormbroker
