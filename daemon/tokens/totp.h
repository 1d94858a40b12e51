// Time-based one-time passcodes (RFC 6238 with HMAC-SHA-1, as the Storm API
// uses): the code for a 30-second step is HOTP(secret, step).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stormbroker {

constexpr int64_t kTotpStepSeconds = 30;

// The step that `unix_seconds` falls in.
inline int64_t TotpStep(int64_t unix_seconds) { return unix_seconds / kTotpStepSeconds; }

// The passcode for `step`: `digits` decimal digits, zero-padded. `key` is the
// raw secret (already decoded from base32).
std::string TotpCode(std::string_view key, int64_t step, int digits = 6);

}  // namespace stormbroker
