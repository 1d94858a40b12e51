// Who is calling over loopback TCP. The kernel records which uid created
// each socket; for a connection between two sockets of this machine, the
// socket-diagnostics netlink interface (NETLINK_SOCK_DIAG, what `ss -e`
// shows, and what identd answered from) names the owner of the client's
// end. That is asked at accept time, for IPv4 and IPv6 loopback.
//
// Unlike SO_PEERCRED on a Unix socket, the kernel keeps no pid and no
// groups for a TCP socket: the caller's gid and supplementary groups are
// the user's, from the user database (policy by group means the user's
// groups there), and pid is 0.
#pragma once

#include <optional>

#include "access/caller.h"

namespace stormbroker {

// The owner of the other end of the accepted loopback TCP connection `fd`.
// Nothing when `fd` is not such a connection or the kernel does not say (the
// caller is then refused). Blocking (netlink, NSS): not for gRPC threads.
std::optional<Caller> IdentifyLoopbackPeer(int fd);

}  // namespace stormbroker
