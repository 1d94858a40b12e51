// A listening TCP socket of the broker's own (the HTTP door's loopback port,
// the metrics endpoint).
#pragma once

#include "config/config.h"
#include "util/status.h"

namespace stormbroker {

// Binds and listens on `address` (SO_REUSEADDR, non-blocking,
// close-on-exec). The caller owns the fd. UNAVAILABLE saying why otherwise.
Result<int> OpenTcpSocket(const TcpAddress& address);

// The address listening socket `fd` is bound to (one systemd passed, say).
Result<TcpAddress> BoundAddress(int fd);

}  // namespace stormbroker
