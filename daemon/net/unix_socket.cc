#include "net/unix_socket.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace stormbroker {
namespace {

std::string Errno(const std::string& what) { return what + ": " + strerror(errno); }

sockaddr_un AddressOf(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// Decides what to do with whatever is at `path` before binding.
Status ClearStaleSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Unavailable(Errno("cannot inspect " + path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return FailedPrecondition(path + " exists and is not a socket; remove it or choose another path in listen:");
  }
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return Unavailable(Errno("socket"));
  sockaddr_un address = AddressOf(path);
  int rc = connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof address);
  int err = errno;
  close(probe);
  if (rc == 0) return FailedPrecondition("another stormbrokerd is serving " + path);
  if (err != ECONNREFUSED && err != ENOENT) {
    return Unavailable("cannot tell whether " + path + " is in use: " + strerror(err));
  }
  spdlog::info("replacing stale socket {}", path);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Unavailable(Errno("cannot remove " + path));
  return Status::Ok();
}

}  // namespace

void SocketFile::Remove() {
  if (path_.empty()) return;
  struct stat st {};
  if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == device_ && st.st_ino == inode_) {
    unlink(path_.c_str());
  }
  path_.clear();
}

Result<int> OpenUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group, SocketFile* file) {
  std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Unavailable(Errno("cannot create the socket directory " + dir));
  }
  if (Status cleared = ClearStaleSocket(path); !cleared.ok()) return cleared;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(Errno("socket"));
  sockaddr_un address = AddressOf(path);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    Status failure = Unavailable(Errno("cannot bind " + path));
    close(fd);
    return failure;
  }
  // Set group and mode before listen(): until then nobody can connect.
  if ((group && chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) || chmod(path.c_str(), mode) != 0 ||
      listen(fd, SOMAXCONN) != 0) {
    Status failure = Unavailable(Errno("cannot set up " + path));
    close(fd);
    unlink(path.c_str());
    return failure;
  }
  struct stat bound {};
  if (file && lstat(path.c_str(), &bound) == 0) *file = SocketFile(path, bound.st_dev, bound.st_ino);
  return fd;
}

}  // namespace stormbroker
