#include "access/loopback_peer.h"

#include <arpa/inet.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace stormbroker {
namespace {

bool IsLoopback(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    return (ntohl(v4.sin_addr.s_addr) >> 24) == 127;
  }
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (IN6_IS_ADDR_LOOPBACK(&v6.sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) return v6.sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

// Fills one end of `id` (a port and an address, as the kernel stores them).
void FillEnd(const sockaddr_storage& address, __be16* port, __be32* words) {
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    *port = v4.sin_port;
    words[0] = v4.sin_addr.s_addr;
  } else {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    *port = v6.sin6_port;
    std::memcpy(words, &v6.sin6_addr, sizeof v6.sin6_addr);
  }
}

// The uid that owns the TCP socket whose local end is `client` and whose
// remote end is `server`, looked up exactly (no dump of every socket).
std::optional<uid_t> OwnerOf(const sockaddr_storage& client, const sockaddr_storage& server) {
  int netlink = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (netlink < 0) return std::nullopt;
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } ask{};
  ask.header.nlmsg_len = sizeof ask;
  ask.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  ask.header.nlmsg_flags = NLM_F_REQUEST;
  ask.request.sdiag_family = static_cast<uint8_t>(client.ss_family);
  ask.request.sdiag_protocol = IPPROTO_TCP;
  ask.request.idiag_states = ~0U;
  ask.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  ask.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  FillEnd(client, &ask.request.id.idiag_sport, ask.request.id.idiag_src);
  FillEnd(server, &ask.request.id.idiag_dport, ask.request.id.idiag_dst);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::optional<uid_t> owner;
  if (sendto(netlink, &ask, sizeof ask, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
      static_cast<ssize_t>(sizeof ask)) {
    alignas(nlmsghdr) char answer[8192];
    ssize_t got = recv(netlink, answer, sizeof answer, 0);
    for (auto* message = reinterpret_cast<nlmsghdr*>(answer); got > 0 && NLMSG_OK(message, static_cast<size_t>(got));
         message = NLMSG_NEXT(message, got)) {
      if (message->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
          message->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        break;  // NLMSG_ERROR: no such socket
      }
      owner = static_cast<const inet_diag_msg*>(NLMSG_DATA(message))->idiag_uid;
      break;
    }
  }
  close(netlink);
  return owner;
}

}  // namespace

std::optional<Caller> IdentifyLoopbackPeer(int fd) {
  sockaddr_storage server{}, client{};
  socklen_t server_length = sizeof server, client_length = sizeof client;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&server), &server_length) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&client), &client_length) != 0 ||
      server.ss_family != client.ss_family || !IsLoopback(client)) {
    return std::nullopt;
  }
  std::optional<uid_t> uid = OwnerOf(client, server);
  if (!uid) return std::nullopt;
  Caller caller;
  caller.uid = *uid;
  caller.user = std::to_string(*uid);
  struct passwd entry {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(*uid, &entry, buffer.data(), buffer.size(), &found) != 0 || !found) {
    return std::nullopt;  // without the user's groups, a rule by group could be missed: deny
  }
  caller.user = found->pw_name;
  caller.gid = found->pw_gid;
  int count = 64;
  std::vector<gid_t> groups(count);
  if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
    groups.resize(count);
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) return std::nullopt;
  }
  groups.resize(count);
  caller.groups = std::move(groups);
  return caller;
}

}  // namespace stormbroker
