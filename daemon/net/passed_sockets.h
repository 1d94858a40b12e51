// The listening sockets systemd passes (socket activation), sorted into the
// broker's doors by the name each socket unit gives them
// (FileDescriptorName=): "http" for the HTTP door, a Unix socket
// (listen.http_socket) or a loopback TCP one (listen.http); "https-proxy"
// for the HTTPS proxy door (loopback TCP, listen.https_proxy); any other name
// for the gRPC socket (so a unit written before names still works). A door
// systemd passes replaces the one in the config; systemd owns its file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace stormbroker {

struct PassedSockets {
  std::optional<int> grpc;       // a listening Unix stream socket
  std::optional<int> http_unix;  // a listening Unix stream socket
  std::optional<int> http_tcp;   // a listening TCP socket on a loopback address
  std::optional<int> https_proxy;  // a listening TCP socket on a loopback address
};

struct PassedSocket {
  int fd;
  std::string name;  // FileDescriptorName=, or systemd's default (the unit's name)
};

// Sorts `sockets` into doors. Refuses, saying which socket and what to do:
// anything but a listening stream socket, a TCP socket off loopback (the
// kernel names the caller only of a connection on this machine), and two
// sockets for one door. Sets every fd non-blocking and close-on-exec.
Result<PassedSockets> SortPassedSockets(const std::vector<PassedSocket>& sockets);

// The sockets systemd passed to this process (LISTEN_FDS, LISTEN_FDNAMES),
// sorted; none when it passed none. Unsets those variables, so no child sees
// them.
Result<PassedSockets> TakeSystemdSockets();

}  // namespace stormbroker
