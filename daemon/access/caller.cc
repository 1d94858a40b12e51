#include "access/caller.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

namespace stormbroker {

std::optional<Caller> IdentifyPeer(int fd) {
  struct ucred cred {};
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0 || length != sizeof cred) {
    return std::nullopt;
  }
  Caller caller;
  caller.uid = cred.uid;
  caller.gid = cred.gid;
  caller.pid = cred.pid;
  caller.user = std::to_string(cred.uid);

  struct passwd entry {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(cred.uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found) {
    caller.user = found->pw_name;
    int count = 64;
    std::vector<gid_t> groups(count);
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
      groups.resize(count);
      getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count);
    }
    groups.resize(count);
    caller.groups = std::move(groups);
  }
  return caller;
}

}  // namespace stormbroker
