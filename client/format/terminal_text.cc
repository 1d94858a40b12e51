#include "format/terminal_text.h"

#include <unistd.h>

#include <cstdio>

namespace stormbroker {

std::string ForTerminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = text[i];
    if (c == '\n' || c == '\t') {
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += '^';
      out += static_cast<char>(c + 0x40);
    } else if (c == 0x7f) {
      out += "^?";
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      char shown[8];
      std::snprintf(shown, sizeof shown, "\\u%04x", static_cast<unsigned char>(text[++i]));
      out += shown;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string ForOutput(std::string_view text, int fd) {
  return isatty(fd) ? ForTerminal(text) : std::string(text);
}

}  // namespace stormbroker
