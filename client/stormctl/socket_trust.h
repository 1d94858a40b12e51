// Before stormctl sends a passcode, it checks who serves the socket: a
// process that took over the socket's path must not receive it.
#pragma once

#include <string>

namespace stormbroker {

// Empty when the process listening on `socket_path` runs as root or as the
// owner of the socket file (SO_PEERCRED), and the directory that holds the
// socket can be written only by root or by that same user (where anyone may
// write, anyone could have put a socket there). Otherwise what is wrong.
std::string UntrustedSocketServer(const std::string& socket_path);

}  // namespace stormbroker
