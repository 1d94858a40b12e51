// Lower case for protocol text: ASCII letters only, every other byte kept
// (methods, hosts, header values, versions). absl's, taking std::string_view
// (Debian's absl has a string_view of its own).
#pragma once

#include <string>
#include <string_view>

#include <absl/strings/ascii.h>

namespace stormbroker {

inline std::string AsciiLower(std::string_view text) {
  std::string lower(text);
  absl::AsciiStrToLower(&lower);
  return lower;
}

}  // namespace stormbroker
