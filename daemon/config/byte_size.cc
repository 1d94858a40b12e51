#include "config/byte_size.h"

#include <string>

namespace stormbroker {

Result<size_t> ParseByteSize(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("'" + std::string(text) +
                           "' is not a size; write bytes (65536) or a whole number with KiB, MiB or GiB (64KiB, 1MiB)");
  };
  size_t i = 0;
  unsigned long long number = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (i >= 12) return bad();  // far beyond any sensible size, and far from overflow
    number = number * 10 + (text[i] - '0');
    ++i;
  }
  if (i == 0) return bad();
  std::string_view unit = text.substr(i);
  int shift;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "KiB") shift = 10;
  else if (unit == "MiB") shift = 20;
  else if (unit == "GiB") shift = 30;
  else return bad();
  unsigned long long bytes = number << shift;
  if ((bytes >> shift) != number || bytes > (1ULL << 40)) {
    return InvalidArgument("'" + std::string(text) + "' is larger than 1 TiB");
  }
  return static_cast<size_t>(bytes);
}

std::string FormatByteSize(size_t bytes) {
  for (auto [shift, unit] : {std::pair{30, " GiB"}, std::pair{20, " MiB"}, std::pair{10, " KiB"}}) {
    size_t whole = size_t{1} << shift;
    if (bytes >= whole && bytes % whole == 0) return std::to_string(bytes >> shift) + unit;
  }
  return std::to_string(bytes) + " bytes";
}

}  // namespace stormbroker
