// Who is calling over loopback TCP. The kernel records which uid created
// each socket; for a connection between two sockets of this machine, the
// socket-diagnostics netlink interface (NETLINK_SOCK_DIAG, what `ss -e`
// shows, and what identd answered from) names the owner of the client's
// end. That is asked at accept time, for IPv4 and IPv6 loopback, and again
// when a connection's first request is complete (LoopbackPeerStillOwnedBy).
//
// The kernel's word is believed only for a live socket: an established
// connection whose socket still has an inode, i.e. a process holds it. A
// client that closed its end (FIN-WAIT, TIME-WAIT: an orphan) is reported
// with uid 0 and inode 0, which must never be read as root.
//
// Unlike SO_PEERCRED on a Unix socket, the kernel keeps no pid and no
// groups for a TCP socket: the caller's gid and supplementary groups are
// the user's, from the user database (policy by group means the user's
// groups there), and pid is 0.
#pragma once

#include <sys/types.h>

#include "access/caller.h"
#include "util/status.h"

namespace stormbroker {

// The uid owning the client's end of the accepted loopback TCP connection
// `fd`. PERMISSION_DENIED, saying what the kernel reported, when `fd` is not
// such a connection, the kernel does not know it, or the client's socket is
// not established or has no owner any more (an orphan: the client closed
// it).
Result<uid_t> LoopbackPeerOwner(int fd);

// The owner of the other end of `fd` with the user's groups (see above).
// Refused as LoopbackPeerOwner refuses, and when the user database does not
// know the uid (a rule by group could be missed). Blocking (netlink, NSS):
// not for gRPC threads.
Result<Caller> IdentifyLoopbackPeer(int fd);

// Whether the client's end of `fd` is still a live socket of `uid`: checked
// when a connection's first request is complete, so that a request whose
// sender is gone or changed is never run. The refusal says why.
Status LoopbackPeerStillOwnedBy(int fd, uid_t uid);

}  // namespace stormbroker
