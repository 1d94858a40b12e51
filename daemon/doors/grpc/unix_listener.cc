#include "doors/grpc/unix_listener.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/server_posix.h>

#include <spdlog/spdlog.h>

#include "access/caller.h"
#include "net/unix_socket.h"

namespace stormbroker {

Result<std::unique_ptr<UnixListener>> UnixListener::Open(const ListenConfig& config) {
  SocketFile file;
  auto fd = OpenUnixSocket(config.socket_path, config.mode, config.group, &file);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<UnixListener>(new UnixListener(*fd, std::move(file)));
}

Result<std::unique_ptr<UnixListener>> UnixListener::Adopt(int fd) {
  // Never AddListeningPort on this path: gRPC would unlink and rebind it.
  return std::unique_ptr<UnixListener>(new UnixListener(fd, SocketFile()));
}

UnixListener::~UnixListener() { Stop(); }

Status UnixListener::Start(grpc::Server* server, ConnectionTable* connections, BrokerCore* core) {
  Status watching = connections->AcceptOn(fd_, [this, server, core] { AcceptWaiting(server, core); });
  if (watching.ok()) connections_ = connections;
  return watching;
}

void UnixListener::Stop() {
  if (fd_ < 0) return;
  if (connections_) connections_->StopAccepting(fd_);
  close(fd_);
  fd_ = -1;
  file_.Remove();
}

Status AdoptConnection(int fd, grpc::Server* server, BrokerCore* core) {
  Result<Caller> caller = IdentifyPeer(fd);
  if (!caller.ok()) {
    close(fd);
    core->RefuseUnidentified(DoorKind::kGrpc, caller.status());
    return caller.status();
  }
  if (Status admitted = core->AdmitConnection(fd, *caller, DoorKind::kGrpc); !admitted.ok()) {
    close(fd);
    return admitted;
  }
  grpc::AddInsecureChannelFromFd(server, fd);  // gRPC owns and closes the fd now
  return Status::Ok();
}

void UnixListener::AcceptWaiting(grpc::Server* server, BrokerCore* core) {
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
    AdoptConnection(client, server, core);
  }
}

}  // namespace stormbroker
