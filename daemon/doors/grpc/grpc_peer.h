// Which accepted connection a gRPC call came on. gRPC 1.51 names the peer of
// a connection added with AddInsecureChannelFromFd "fd:N"; the accept loop
// admitted fd N to the broker's core before handing it over, so a handler
// finds its caller through that number. gRPC does not reuse the number while
// a call on it is alive. The form is an implementation detail: the start-up
// self-test (self_test.h) checks it, and the daemon refuses to serve if it
// fails.
#pragma once

#include <charconv>
#include <optional>
#include <string_view>

namespace stormbroker {

// N of a peer string "fd:N"; nothing for any other form (an in-process call).
inline std::optional<int> ConnectionFdOf(std::string_view peer) {
  constexpr std::string_view kPrefix = "fd:";
  if (peer.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view digits = peer.substr(kPrefix.size());
  int fd = -1;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
  if (error != std::errc() || end != digits.data() + digits.size() || fd < 0) return std::nullopt;
  return fd;
}

}  // namespace stormbroker
