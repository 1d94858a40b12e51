// What counts as this machine's loopback, in one place: 127.0.0.0/8, ::1,
// and 127.0.0.0/8 mapped into IPv6 (::ffff:127.0.0.1). The broker takes
// TCP callers only there, because only for a connection between two sockets
// of this machine can the kernel say which local user owns the other end.
#pragma once

#include <sys/socket.h>

#include <string_view>

namespace stormbroker {

bool IsLoopback(const sockaddr_storage& address);
// A numeric address written as text ("127.0.0.1", "::1", "::ffff:127.0.0.2").
bool IsLoopbackAddress(std::string_view host);
// The local address of socket `fd`.
bool IsBoundToLoopback(int fd);

}  // namespace stormbroker
