#include "net/tcp_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

namespace stormbroker {

namespace {

// How long a door waits for its port while another process holds it: a
// predecessor that drains its calls after SIGTERM holds it until it exits.
constexpr auto kWaitForPort = std::chrono::seconds(40);

std::string Describe(const TcpAddress& address) {
  bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

// A listening socket on `address`, or -1 with errno set.
int Listen(const TcpAddress& address) {
  bool v6 = address.host.find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  // [::1] means [::1] alone, not the IPv4 addresses mapped into IPv6.
  if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (v6) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(address.port);
    inet_pton(AF_INET6, address.host.c_str(), &in6.sin6_addr);
    length = sizeof in6;
  } else {
    auto& in4 = reinterpret_cast<sockaddr_in&>(storage);
    in4.sin_family = AF_INET;
    in4.sin_port = htons(address.port);
    inet_pton(AF_INET, address.host.c_str(), &in4.sin_addr);
    length = sizeof in4;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || listen(fd, SOMAXCONN) != 0) {
    int error = errno;
    close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

}  // namespace

Result<int> OpenTcpSocket(const TcpAddress& address) {
  auto give_up = std::chrono::steady_clock::now() + kWaitForPort;
  bool said = false;
  while (true) {
    int fd = Listen(address);
    if (fd >= 0) return fd;
    if (errno != EADDRINUSE || std::chrono::steady_clock::now() > give_up) {
      return Unavailable("cannot listen on " + Describe(address) + ": " + strerror(errno));
    }
    if (!said) {
      spdlog::warn("{} is in use (by a broker still draining its calls?): waiting for it, at most {} s",
                   Describe(address), kWaitForPort.count());
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<std::vector<int>> OpenLoopbackSockets(const TcpAddress& address) {
  auto fd = OpenTcpSocket(address);
  if (!fd.ok()) return fd.status();
  std::vector<int> fds = {*fd};
  std::optional<TcpAddress> sibling;
  if (address.host == "127.0.0.1") sibling = TcpAddress{"::1", address.port};
  if (address.host == "::1") sibling = TcpAddress{"127.0.0.1", address.port};
  if (!sibling) return fds;
  int held = Listen(*sibling);
  // A machine without that loopback address: nobody can listen there.
  if (held < 0 && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) return fds;
  if (held < 0) {
    auto waited = OpenTcpSocket(*sibling);
    if (!waited.ok()) {
      close(*fd);
      return Unavailable("cannot also hold " + Describe(*sibling) + " beside " + Describe(address) + " (" +
                         waited.status().message() + "): a client of localhost may try it first, so another "
                         "program listening there would get the broker's callers; stop it, or choose another port");
    }
    held = *waited;
  }
  fds.push_back(held);
  return fds;
}

void WarnOfRestartGap(const std::string& door, const TcpAddress& address) {
  if (address.port < 1024) return;
  spdlog::warn("{} listens on {} itself: between one broker process and the next (a restart, a crash) another "
               "local user could bind that port and receive the callers' requests; use the shipped socket unit "
               "(systemd holds the port) or a port below 1024",
               door, Describe(address));
}

Result<TcpAddress> BoundAddress(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return Unavailable(std::string("getsockname: ") + strerror(errno));
  }
  char text[INET6_ADDRSTRLEN] = {};
  TcpAddress address;
  if (storage.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    address.port = ntohs(in6.sin6_port);
  } else {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(storage);
    inet_ntop(AF_INET, &in4.sin_addr, text, sizeof text);
    address.port = ntohs(in4.sin_port);
  }
  address.host = text;
  return address;
}

}  // namespace stormbroker
