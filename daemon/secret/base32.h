// RFC 4648 base32, as authenticator apps and `oathtool -b` write TOTP secrets.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace stormbroker {

// Decodes base32, ignoring case, spaces and '=' padding. INVALID_ARGUMENT for
// any other character, without echoing the input (it is a secret).
Result<std::string> DecodeBase32(std::string_view text);

}  // namespace stormbroker
