#include "fleet/fleet_keys.h"

#include <charconv>
#include <cstdio>

namespace stormbroker {

std::string FleetKeys::Candidacy(std::string_view account, int64_t lease) const {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(lease));
  return Candidates(account) + hex;
}

std::optional<int64_t> LeaseOfCandidacy(std::string_view key) {
  std::string_view hex = key.substr(key.rfind('/') + 1);
  uint64_t lease = 0;
  auto parsed = std::from_chars(hex.data(), hex.data() + hex.size(), lease, 16);
  if (hex.size() != 16 || parsed.ec != std::errc() || parsed.ptr != hex.data() + hex.size()) return std::nullopt;
  return static_cast<int64_t>(lease);
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // etcd: every key
}

}  // namespace stormbroker
