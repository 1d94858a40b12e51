#include "units/duration.h"

#include <cmath>
#include <string>

namespace stormbroker {

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("'" + std::string(text) +
                           "' is not a duration; write seconds (90) or a number with "
                           "ms, s, m or h (500ms, 30s, 15m, 1h)");
  };
  size_t i = 0;
  bool seen_digit = false, seen_dot = false;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) {
    if (text[i] == '.') {
      if (seen_dot) return bad();
      seen_dot = true;
    } else {
      seen_digit = true;
    }
    ++i;
  }
  if (!seen_digit || i > 24) return bad();
  double number = std::stod(std::string(text.substr(0, i)));
  std::string_view unit = text.substr(i);
  double scale_ms;
  if (unit.empty() || unit == "s") {
    scale_ms = 1000;
  } else if (unit == "ms") {
    scale_ms = 1;
  } else if (unit == "m") {
    scale_ms = 60'000;
  } else if (unit == "h") {
    scale_ms = 3'600'000;
  } else {
    return bad();
  }
  double ms = number * scale_ms;
  // Anything beyond a year is a typo, and keeps the arithmetic far from overflow.
  if (!std::isfinite(ms) || ms > 366.0 * 24 * 3'600'000) {
    return InvalidArgument("'" + std::string(text) + "' is longer than a year");
  }
  return std::chrono::milliseconds(static_cast<long long>(std::llround(ms)));
}

}  // namespace stormbroker
