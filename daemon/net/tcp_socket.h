// A listening TCP socket of the broker's own (the HTTP door's loopback port,
// the metrics endpoint).
#pragma once

#include <vector>

#include "net/tcp_address.h"
#include "util/status.h"

namespace stormbroker {

// Binds and listens on `address` (SO_REUSEADDR, non-blocking,
// close-on-exec; an IPv6 address alone, not IPv4 mapped into it). The
// caller owns the fd. A port in use is waited for (at most 40 s, said once
// in the log): a predecessor draining its calls holds it until it exits.
// UNAVAILABLE saying why otherwise.
Result<int> OpenTcpSocket(const TcpAddress& address);

// OpenTcpSocket, and for 127.0.0.1 or [::1] the same port on the other
// loopback address too (first in the list: the one asked for), so that no
// other local user can listen where a client of "localhost" may go first.
// A machine without the other address is fine (nobody can listen there);
// the other address held by someone else is UNAVAILABLE, saying so.
Result<std::vector<int>> OpenLoopbackSockets(const TcpAddress& address);

// Logs (once per call) that `door`, listening on an unprivileged `address`
// it opened itself, leaves the port free between one process and the next
// (a restart, a crash), when another local user could take it; the shipped
// socket units (systemd holds the port) or a port below 1024 close that gap.
void WarnOfRestartGap(const std::string& door, const TcpAddress& address);

// The address listening socket `fd` is bound to (one systemd passed, say).
Result<TcpAddress> BoundAddress(int fd);

}  // namespace stormbroker
