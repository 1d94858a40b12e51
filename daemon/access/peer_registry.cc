#include "access/peer_registry.h"

#include <charconv>

namespace stormbroker {

void PeerRegistry::Record(int fd, Caller caller) {
  std::lock_guard<std::mutex> lock(mutex_);
  callers_[fd] = std::move(caller);
}

std::optional<Caller> PeerRegistry::Lookup(std::string_view peer) const {
  constexpr std::string_view kPrefix = "fd:";
  if (peer.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view digits = peer.substr(kPrefix.size());
  int fd = -1;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
  if (error != std::errc() || end != digits.data() + digits.size() || fd < 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = callers_.find(fd);
  if (it == callers_.end()) return std::nullopt;
  return it->second;
}

}  // namespace stormbroker
