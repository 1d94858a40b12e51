#include "stormbroker/socket_trust.h"

#include <errno.h>
#include <optional>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace stormbroker::client {
namespace {

std::string Errno(const std::string& what) { return what + ": " + strerror(errno); }

// Writable by someone who is neither the owner nor root (a group other
// than root's counts as others).
bool OthersMayWrite(const struct stat& st) {
  return (st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0);
}

std::optional<uid_t> ServiceUid() {
  const passwd* user = getpwnam(kServiceUser);
  if (!user) return std::nullopt;
  return user->pw_uid;
}

// Who serves the socket at `path`, from the kernel; an error message when
// nobody (or nothing) answers.
std::string ServerOf(const std::string& path, uid_t* uid) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return path + " is too long for a socket path";
  memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  struct ucred server {};
  socklen_t length = sizeof server;
  std::string problem;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    problem = Errno("cannot connect to " + path);
  } else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &server, &length) != 0) {
    problem = Errno("cannot learn who serves the socket");
  }
  close(fd);
  *uid = server.uid;
  return problem;
}

}  // namespace

std::string UntrustedSocket(const std::string& socket_path) {
  size_t slash = socket_path.rfind('/');
  std::string given_dir = slash == std::string::npos ? "." : slash == 0 ? "/" : socket_path.substr(0, slash);
  std::string name = slash == std::string::npos ? socket_path : socket_path.substr(slash + 1);
  char* resolved = realpath(given_dir.c_str(), nullptr);
  if (!resolved) return Errno("cannot resolve the socket's directory " + given_dir);
  std::string dir = resolved;
  free(resolved);
  std::string path = (dir == "/" ? "" : dir) + "/" + name;

  struct stat file {};
  if (lstat(path.c_str(), &file) != 0) return Errno("cannot inspect " + path);
  if (!S_ISSOCK(file.st_mode)) return path + " is not a socket";
  uid_t me = geteuid();
  std::optional<uid_t> service = ServiceUid();
  if (file.st_uid != 0 && file.st_uid != me && file.st_uid != service) {
    return path + " belongs to uid " + std::to_string(file.st_uid) +
           ", who is neither root, you, nor the broker's user (" + kServiceUser + ")";
  }
  uid_t server = 0;
  if (std::string problem = ServerOf(path, &server); !problem.empty()) return problem;
  if (server != 0 && server != file.st_uid) {
    return path + " is served by uid " + std::to_string(server) + ", which is neither root nor the owner of the "
           "socket file (uid " + std::to_string(file.st_uid) + "): something took over the broker's socket";
  }
  struct stat parent {};
  if (stat(dir.c_str(), &parent) != 0) return Errno("cannot inspect " + dir);
  if ((parent.st_uid != 0 && parent.st_uid != server) || OthersMayWrite(parent)) {
    return "the socket's directory " + dir + " can be written by others, who could have put a socket there";
  }
  // Every directory above: nobody else could have moved the ones below.
  for (std::string above = dir; above != "/";) {
    size_t cut = above.rfind('/');
    above = cut == 0 ? "/" : above.substr(0, cut);
    struct stat st {};
    if (stat(above.c_str(), &st) != 0) return Errno("cannot inspect " + above);
    if (st.st_uid != 0 && st.st_uid != me) {
      return above + " (above the socket) belongs to uid " + std::to_string(st.st_uid) +
             ", who could replace the directories below it";
    }
    if (OthersMayWrite(st) && !(st.st_mode & S_ISVTX)) {
      return above + " (above the socket) can be written by others, who could replace the directories below it";
    }
  }
  return "";
}

}  // namespace stormbroker::client
