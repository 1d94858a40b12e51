#include "stormctl/socket_trust.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace stormbroker {

std::string UntrustedSocketServer(const std::string& socket_path) {
  struct stat file {};
  if (lstat(socket_path.c_str(), &file) != 0) return "cannot inspect " + socket_path + ": " + strerror(errno);
  if (!S_ISSOCK(file.st_mode)) return socket_path + " is not a socket";
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) return socket_path + " is too long for a socket path";
  memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  struct ucred server {};
  socklen_t length = sizeof server;
  std::string problem;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    problem = "cannot connect to " + socket_path + ": " + strerror(errno);
  } else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &server, &length) != 0) {
    problem = std::string("cannot learn who serves the socket: ") + strerror(errno);
  }
  close(fd);
  if (!problem.empty()) return problem;
  if (server.uid != 0 && server.uid != file.st_uid) {
    return socket_path + " is served by uid " + std::to_string(server.uid) + ", which is neither root nor the owner of "
           "the socket file (uid " + std::to_string(file.st_uid) + "): something took over the broker's socket";
  }
  std::string dir = socket_path.substr(0, socket_path.rfind('/'));
  struct stat parent {};
  if (stat(dir.empty() ? "/" : dir.c_str(), &parent) != 0) return "cannot inspect " + dir + ": " + strerror(errno);
  bool others_write = (parent.st_mode & S_IWOTH) || ((parent.st_mode & S_IWGRP) && parent.st_gid != 0);
  if ((parent.st_uid != 0 && parent.st_uid != server.uid) || others_write) {
    return "the socket's directory " + dir + " can be written by others, who could have put a socket there";
  }
  return "";
}

}  // namespace stormbroker
