#include "secret/base32.h"

namespace stormbroker {

Result<std::string> DecodeBase32(std::string_view text) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a';
    else if (c >= '2' && c <= '7') value = c - '2' + 26;
    else if (c == ' ' || c == '=' || c == '-') continue;
    else return InvalidArgument("not base32: unexpected character at position " + std::to_string(i));
    buffer = (buffer << 5) | static_cast<unsigned>(value);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (out.empty()) return InvalidArgument("the base32 secret is empty");
  return out;
}

}  // namespace stormbroker
