// The emulator's user database, from a YAML file:
//   - username: deploy-bot
//     password: s3cret
//     totp_secret: JBSWY3DPEHPK3PXP   # optional, base32 as oathtool -b takes it
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fake_storm {

struct User {
  std::string username;
  std::string password;
  std::string totp_secret;  // base32; empty when two-factor is off
};

// Loads the users file; on failure returns nothing and sets `error` to
// "FILE: what is wrong".
std::optional<std::vector<User>> LoadUsers(const std::string& path, std::string* error);

}  // namespace fake_storm
