// Shape checks on what a caller asks for, before anything reaches upstream.
#pragma once

#include <string_view>

#include "util/status.h"

namespace stormbroker {

// Longest method path accepted; real ones are well under 64 characters.
constexpr size_t kMaxMethodLength = 128;

// A method path is 2 to 8 words of letters, digits and '_' joined by single
// slashes ("Utilities/Info/ping"): nothing that could change what URL it
// becomes (no '..', '//', leading slash, query, percent, extension or control
// character). INVALID_ARGUMENT says what is wrong.
Status CheckMethodPath(std::string_view method);

// Whether `method` is one of the API's own credential methods (Account/Auth/*:
// token, expireToken, ...), in any letter case and with or without an
// encoding suffix such as ".json". These hand out or change the broker's own
// token, so no door of the broker forwards them for a caller, whatever policy
// says: GetToken and Logout are the governed ways to do that.
bool IsReservedMethod(std::string_view method);
// A method as the API reads it: lower case, without .json/.yaml or leading
// slashes (what makes two calls the same question for the cache).
std::string CanonicalMethod(std::string_view method);

// The PERMISSION_DENIED answer to a reserved method.
Status ReservedMethodRefusal(std::string_view method);

// A two-factor passcode: 6 to 8 ASCII digits, nothing else (it travels in an
// HTTP header, so nothing may change the header's shape).
Status CheckPasscode(std::string_view passcode);

// An account name as the config allows it: 1 to 64 letters, digits, '_', '-'
// or '.'. Empty is allowed (the broker's only account).
Status CheckAccountName(std::string_view account);

}  // namespace stormbroker
