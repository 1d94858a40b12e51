#include "access/caller.h"

#include <errno.h>
#include <pwd.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace stormbroker {
namespace {

std::string ExeOf(pid_t pid) {
  char path[PATH_MAX];
  std::string link = "/proc/" + std::to_string(pid) + "/exe";
  ssize_t n = readlink(link.c_str(), path, sizeof path - 1);
  return n > 0 ? std::string(path, n) : std::string();
}

std::string CommOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// The supplementary groups the peer process had when it connected.
std::optional<std::vector<gid_t>> PeerGroups(int fd) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t length = groups.size() * sizeof(gid_t);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) == 0) {
      groups.resize(length / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) return std::nullopt;
    groups.resize(length / sizeof(gid_t) + 1);  // the kernel said how many
  }
  return std::nullopt;
}

// The innermost systemd unit (service or scope) in the process's cgroup path,
// e.g. "0::/system.slice/ci-runner.service" -> "ci-runner.service".
std::string UnitOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, unit;
  while (std::getline(in, line)) {
    size_t path = line.find("::");
    if (path == std::string::npos) continue;  // only the unified (v2) hierarchy
    std::string rest = line.substr(path + 2);
    size_t start = 0;
    while (start < rest.size()) {
      size_t end = rest.find('/', start);
      if (end == std::string::npos) end = rest.size();
      std::string part = rest.substr(start, end - start);
      auto ends_with = [&](const char* suffix) {
        std::string s(suffix);
        return part.size() > s.size() && part.compare(part.size() - s.size(), s.size(), s) == 0;
      };
      if (ends_with(".service") || ends_with(".scope")) unit = part;
      start = end + 1;
    }
  }
  return unit;
}

}  // namespace

Result<Caller> IdentifyPeer(int fd) {
  struct ucred cred {};
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0 || length != sizeof cred) {
    return PermissionDenied("the kernel did not say who is on the connection (SO_PEERCRED)");
  }
  std::optional<std::vector<gid_t>> groups = PeerGroups(fd);
  if (!groups) {  // unknown groups could hide a missing one: deny
    return PermissionDenied("the kernel did not say which groups the caller has (SO_PEERGROUPS)");
  }
  Caller caller;
  caller.uid = cred.uid;
  caller.gid = cred.gid;
  caller.pid = cred.pid;
  caller.groups = std::move(*groups);
  caller.user = std::to_string(cred.uid);
  struct passwd entry {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(cred.uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found) caller.user = found->pw_name;
  caller.exe = ExeOf(cred.pid);
  caller.comm = CommOf(cred.pid);
  caller.unit = UnitOf(cred.pid);
  return caller;
}

}  // namespace stormbroker
