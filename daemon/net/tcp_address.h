// A TCP address to listen on: a numeric host and a port. (listen.http takes
// only loopback: 127.0.0.0/8 or ::1, where the kernel can say which local
// user owns the other end of a connection.)
#pragma once

#include <cstdint>
#include <string>

namespace stormbroker {

struct TcpAddress {
  std::string host;  // "127.0.0.1" or "::1", as written
  uint16_t port = 0;

  bool operator==(const TcpAddress&) const = default;
};

}  // namespace stormbroker
