#include "service/passed_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace stormbroker {
namespace {

bool OnLoopback(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
  if (address.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<sockaddr_in&>(address).sin_addr.s_addr) >> 24) == 127;
  }
  if (address.ss_family != AF_INET6) return false;
  const in6_addr& v6 = reinterpret_cast<sockaddr_in6&>(address).sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
}

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
    if (socket.name == "http") {
      if (tcp && !OnLoopback(socket.fd)) {
        return FailedPrecondition(Describe(socket) +
                                  " is not on a loopback address; the HTTP door listens on 127.0.0.1 or [::1] only "
                                  "(the kernel names the caller only of a connection on this machine)");
      }
      door = unix_stream ? &sorted.http_unix : tcp ? &sorted.http_tcp : nullptr;
    } else if (unix_stream) {
      door = &sorted.grpc;
    }
    if (!door) {
      return FailedPrecondition(Describe(socket) +
                                " is not a listening stream socket; give the socket unit ListenStream= with a "
                                "Unix path (or, for FileDescriptorName=http, a loopback address:port)");
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
