// Who is calling, as the kernel says (SO_PEERCRED at accept time). Decisions
// use uid, gid and groups only; pid is for the audit trail (pids are reused).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace stormbroker {

struct Caller {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  std::vector<gid_t> groups;  // supplementary groups from the uid's account entry
  std::string user;           // user name, or the uid in digits when unknown
  // For the audit trail only (a process can change both; never decide on them):
  std::string exe;   // /proc/PID/exe, or empty when unreadable
  std::string unit;  // the systemd unit from /proc/PID/cgroup, or empty
};

// Reads the peer credentials of a connected Unix socket and resolves the
// user's name and supplementary groups. Blocking (NSS): not for gRPC threads.
std::optional<Caller> IdentifyPeer(int fd);

}  // namespace stormbroker
