// Whether a socket is the broker's before a secret is sent to it: a process
// that put a socket where the broker's was expected (a relative name in a
// shared directory, a path under a directory others can write, a socket of
// another ordinary user) must receive no passcode, token request or params.
#pragma once

#include <string>

namespace stormbroker::client {

// The daemon's own user (systemd/stormbroker.sysusers): its sockets are
// trusted like root's.
inline constexpr const char* kServiceUser = "stormbroker";

// Empty when `socket_path` can be trusted, else what is wrong. The path is
// resolved first (realpath of its directory; a bare name is in the current
// directory), then:
//   - the socket file is a socket (not a link), owned by root, the caller or
//     the service user, and served (SO_PEERCRED) by root or its owner;
//   - its directory belongs to root or the server and nobody else can write
//     it (not even with the sticky bit: anyone could have put it there);
//   - every directory above, up to /, belongs to root or the caller and is
//     either not writable by others or sticky (nobody could have swapped the
//     directories below it).
std::string UntrustedSocket(const std::string& socket_path);

}  // namespace stormbroker::client
