// Who is calling, as the kernel says at accept time: SO_PEERCRED for uid, gid
// and pid, SO_PEERGROUPS for the supplementary groups the process had when it
// connected (not what /etc/group says of the user today: a process that
// dropped a group has dropped it). Decisions use uid, gid and groups only;
// pid is for the audit trail (pids are reused).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace stormbroker {

struct Caller {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  std::vector<gid_t> groups;  // the process's supplementary groups
  std::string user;           // user name, or the uid in digits when unknown
  // Hints for the audit trail only (a process can change them all; never
  // decide on them), empty when unreadable:
  std::string exe;   // /proc/PID/exe (only a privileged daemon can read it)
  std::string comm;  // /proc/PID/comm, the command name, readable by anyone
  std::string unit;  // the systemd unit from /proc/PID/cgroup
};

// Reads the peer credentials and groups of a connected Unix socket and
// resolves the user's name. PERMISSION_DENIED when the kernel does not say
// (the caller is then refused). Blocking (NSS): not for gRPC threads.
Result<Caller> IdentifyPeer(int fd);

}  // namespace stormbroker
