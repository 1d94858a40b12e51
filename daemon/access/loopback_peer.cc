#include "access/loopback_peer.h"

#include <arpa/inet.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "net/loopback.h"

namespace stormbroker {
namespace {

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

// TCP states by the names `ss` gives them.
const char* StateName(int state) {
  switch (state) {
    case TCP_ESTABLISHED: return "ESTABLISHED";
    case TCP_SYN_SENT: return "SYN-SENT";
    case TCP_SYN_RECV: return "SYN-RECV";
    case TCP_FIN_WAIT1: return "FIN-WAIT-1";
    case TCP_FIN_WAIT2: return "FIN-WAIT-2";
    case TCP_TIME_WAIT: return "TIME-WAIT";
    case TCP_CLOSE: return "CLOSE";
    case TCP_CLOSE_WAIT: return "CLOSE-WAIT";
    case TCP_LAST_ACK: return "LAST-ACK";
    case TCP_LISTEN: return "LISTEN";
    case TCP_CLOSING: return "CLOSING";
    default: return "unknown";
  }
}

// What sock_diag says of the TCP socket whose local end is `client` and
// whose remote end is `server`, looked up exactly (no dump of every socket).
Result<inet_diag_msg> AskKernel(const sockaddr_storage& client, const sockaddr_storage& server) {
  int netlink = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (netlink < 0) return PermissionDenied(std::string("cannot ask the kernel who is calling: ") + strerror(errno));
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } ask{};
  ask.header.nlmsg_len = sizeof ask;
  ask.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  ask.header.nlmsg_flags = NLM_F_REQUEST;
  ask.request.sdiag_family = static_cast<uint8_t>(client.ss_family);
  ask.request.sdiag_protocol = IPPROTO_TCP;
  ask.request.idiag_states = ~0U;  // every state: a closing socket is named as such, then refused
  ask.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  ask.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  FillEnd(client, &ask.request.id.idiag_sport, ask.request.id.idiag_src);
  FillEnd(server, &ask.request.id.idiag_dport, ask.request.id.idiag_dst);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  Result<inet_diag_msg> said = PermissionDenied("the kernel knows no socket at the client's end of the connection");
  if (sendto(netlink, &ask, sizeof ask, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
      static_cast<ssize_t>(sizeof ask)) {
    alignas(nlmsghdr) char answer[8192];
    ssize_t got = recv(netlink, answer, sizeof answer, 0);
    auto* message = reinterpret_cast<nlmsghdr*>(answer);
    if (got > 0 && NLMSG_OK(message, static_cast<size_t>(got)) && message->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
        message->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
      said = *static_cast<const inet_diag_msg*>(NLMSG_DATA(message));
    }  // else NLMSG_ERROR: no such socket
  }
  close(netlink);
  return said;
}

}  // namespace

Result<uid_t> LoopbackPeerOwner(int fd) {
  sockaddr_storage server{}, client{};
  socklen_t server_length = sizeof server, client_length = sizeof client;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&server), &server_length) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&client), &client_length) != 0) {
    return PermissionDenied(std::string("the connection has no peer (") + strerror(errno) + ")");
  }
  if (server.ss_family != client.ss_family || !IsLoopback(client)) {
    return PermissionDenied("the connection does not come from this machine's loopback");
  }
  auto said = AskKernel(client, server);
  if (!said.ok()) return said.status();
  // An orphan (its process closed it) is reported as uid 0 with no inode:
  // that is nobody, not root.
  if (said->idiag_state != TCP_ESTABLISHED || said->idiag_inode == 0) {
    return PermissionDenied(std::string("the client's socket is ") + StateName(said->idiag_state) +
                            (said->idiag_inode == 0 ? " with no owner (the client closed it)" : "") +
                            ", so the kernel cannot say who sent the request (it reported uid " +
                            std::to_string(said->idiag_uid) + ")");
  }
  return static_cast<uid_t>(said->idiag_uid);
}

Result<Caller> IdentifyLoopbackPeer(int fd) {
  auto uid = LoopbackPeerOwner(fd);
  if (!uid.ok()) return uid.status();
  Caller caller;
  caller.uid = *uid;
  struct passwd entry {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(*uid, &entry, buffer.data(), buffer.size(), &found) != 0 || !found) {
    // Without the user's groups, a rule by group could be missed: deny.
    return PermissionDenied("uid " + std::to_string(*uid) + " is not in the user database, so its groups are unknown");
  }
  caller.user = found->pw_name;
  caller.gid = found->pw_gid;
  int count = 64;
  std::vector<gid_t> groups(count);
  if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
    groups.resize(count);
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
      return PermissionDenied("the groups of " + caller.user + " cannot be read");
    }
  }
  groups.resize(count);
  caller.groups = std::move(groups);
  return caller;
}

Status LoopbackPeerStillOwnedBy(int fd, uid_t uid) {
  auto now = LoopbackPeerOwner(fd);
  if (!now.ok()) return now.status();
  if (*now != uid) {
    return PermissionDenied("the client's socket changed owner (uid " + std::to_string(uid) + ", now " +
                            std::to_string(*now) + ")");
  }
  return Status::Ok();
}

}  // namespace stormbroker
