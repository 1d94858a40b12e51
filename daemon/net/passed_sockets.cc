#include "net/passed_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>

#include "net/loopback.h"

namespace stormbroker {
namespace {

std::string Describe(const PassedSocket& socket) {
  return "the socket systemd passed as \"" + socket.name + "\" (fd " + std::to_string(socket.fd) + ")";
}

}  // namespace

Result<PassedSockets> SortPassedSockets(const std::vector<PassedSocket>& sockets) {
  PassedSockets sorted;
  for (const PassedSocket& socket : sockets) {
    bool unix_stream = sd_is_socket_unix(socket.fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) > 0;
    bool tcp = sd_is_socket_inet(socket.fd, AF_UNSPEC, SOCK_STREAM, /*listening=*/1, 0) > 0;
    std::optional<int>* door = nullptr;
    bool named_tcp = socket.name == "http" || socket.name == "https-proxy";
    if (named_tcp && tcp && !IsBoundToLoopback(socket.fd)) {
      return FailedPrecondition(Describe(socket) +
                                " is not on a loopback address; the broker's TCP doors listen on 127.0.0.1 or [::1] "
                                "only (the kernel names the caller only of a connection on this machine)");
    }
    if (socket.name == "http") {
      door = unix_stream ? &sorted.http_unix : tcp ? &sorted.http_tcp : nullptr;
    } else if (socket.name == "https-proxy") {
      door = tcp ? &sorted.https_proxy : nullptr;
    } else if (unix_stream) {
      door = &sorted.grpc;
    }
    if (!door) {
      return FailedPrecondition(Describe(socket) +
                                " is not a listening stream socket; give the socket unit ListenStream= with a "
                                "Unix path (or, for FileDescriptorName=http, a loopback address:port; for "
                                "FileDescriptorName=https-proxy, a loopback address:port only)");
    }
    if (*door) {
      return FailedPrecondition(Describe(socket) +
                                " is a second socket for the same door; the broker takes one gRPC socket, and for "
                                "FileDescriptorName=http one Unix and one loopback TCP socket");
    }
    fcntl(socket.fd, F_SETFL, fcntl(socket.fd, F_GETFL) | O_NONBLOCK);
    fcntl(socket.fd, F_SETFD, FD_CLOEXEC);
    *door = socket.fd;
  }
  return sorted;
}

Result<PassedSockets> TakeSystemdSockets() {
  char** names = nullptr;
  int count = sd_listen_fds_with_names(/*unset_environment=*/1, &names);
  std::vector<PassedSocket> sockets;
  for (int i = 0; i < count; ++i) {
    sockets.push_back({SD_LISTEN_FDS_START + i, names && names[i] ? names[i] : "unknown"});
  }
  if (names) {
    for (int i = 0; names[i]; ++i) free(names[i]);
    free(names);
  }
  return SortPassedSockets(sockets);
}

}  // namespace stormbroker
