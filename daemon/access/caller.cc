#include "access/caller.h"

#include <grp.h>
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
  caller.exe = ExeOf(cred.pid);
  caller.unit = UnitOf(cred.pid);
  return caller;
}

}  // namespace stormbroker
