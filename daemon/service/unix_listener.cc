#include "service/unix_listener.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpcpp/server_posix.h>

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

Result<int> OpenUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group) {
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
  return fd;
}

Result<std::unique_ptr<UnixListener>> UnixListener::Open(const ListenConfig& config) {
  auto fd = OpenUnixSocket(config.socket_path, config.mode, config.group);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<UnixListener>(new UnixListener(*fd, config.socket_path));
}

Result<std::unique_ptr<UnixListener>> UnixListener::Adopt(int fd) {
  // Never AddListeningPort on this path: gRPC would unlink and rebind it.
  return std::unique_ptr<UnixListener>(new UnixListener(fd, ""));
}

UnixListener::~UnixListener() { Stop(); }

Status UnixListener::Start(grpc::Server* server, ConnectionTable* connections, ConnectionRefused refused) {
  Status watching = connections->AcceptOn(fd_, [this, server, connections, refused = std::move(refused)] {
    AcceptWaiting(server, connections, refused);
  });
  if (watching.ok()) connections_ = connections;
  return watching;
}

void UnixListener::Stop() {
  if (fd_ < 0) return;
  if (connections_) connections_->StopAccepting(fd_);
  close(fd_);
  fd_ = -1;
  if (!path_.empty()) unlink(path_.c_str());
}

Status AdoptConnection(int fd, grpc::Server* server, ConnectionTable* connections, const ConnectionRefused& refused) {
  Result<Caller> caller = IdentifyPeer(fd);
  if (!caller.ok()) {
    close(fd);
    return caller.status();
  }
  if (Status admitted = connections->Admit(fd, *caller); !admitted.ok()) {
    close(fd);
    if (refused) refused(*caller, admitted);
    return admitted;
  }
  grpc::AddInsecureChannelFromFd(server, fd);  // gRPC owns and closes the fd now
  return Status::Ok();
}

void UnixListener::AcceptWaiting(grpc::Server* server, ConnectionTable* connections,
                                 const ConnectionRefused& refused) {
  for (;;) {
    // Non-blocking fds: gRPC's event engine hangs on a blocking one.
    int client = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::error("accept: {}; pausing for 100 ms", strerror(errno));
        usleep(100'000);
      } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        spdlog::error("accept: {}", strerror(errno));
      }
      return;
    }
    AdoptConnection(client, server, connections, refused);
  }
}

}  // namespace stormbroker
