// The daemon's own accept loop on its Unix socket. gRPC 1.51 cannot tell a
// handler who is calling over a Unix socket, so the daemon accepts each
// connection itself, learns the caller from the kernel (SO_PEERCRED,
// SO_PEERGROUPS), admits it to the ConnectionTable (which may refuse it for
// a limit) and only then hands the fd to gRPC.
#pragma once

#include <grpcpp/server.h>

#include <memory>

#include "access/connection_table.h"
#include "broker/broker_core.h"
#include "config/config.h"
#include "net/unix_socket.h"
#include "util/status.h"

namespace stormbroker {

class UnixListener {
 public:
  // Creates, binds and listens on config.socket_path with config.mode.
  // A stale socket left by a dead daemon is replaced; a live one is refused
  // ("another stormbrokerd is serving PATH"); a non-socket file is left alone.
  static Result<std::unique_ptr<UnixListener>> Open(const ListenConfig& config);
  // Listens on `fd`, a listening socket systemd passed (socket activation).
  // systemd owns its file: Stop closes the fd and leaves the file alone.
  static Result<std::unique_ptr<UnixListener>> Adopt(int fd);
  ~UnixListener();

  // Starts accepting, on the thread of `connections` (which, as `core`,
  // must outlive this listener); each connection is admitted by `core` and
  // added to `server`, or closed.
  Status Start(grpc::Server* server, ConnectionTable* connections, BrokerCore* core);
  // Stops accepting, closes the socket and removes its file. Idempotent.
  void Stop();

 private:
  UnixListener(int fd, SocketFile file) : fd_(fd), file_(std::move(file)) {}
  // Accepts every connection waiting.
  void AcceptWaiting(grpc::Server* server, BrokerCore* core);

  int fd_;  // -1 once stopped
  SocketFile file_;  // none when systemd passed the socket
  ConnectionTable* connections_ = nullptr;  // set while accepting
};

// Hands `fd` (a connected, non-blocking socket) to gRPC after `core`
// admitted who is on its other end. Otherwise closes it and says why (the
// core audits it): the caller is unknown (the kernel did not say) or over a
// limit.
Status AdoptConnection(int fd, grpc::Server* server, BrokerCore* core);

}  // namespace stormbroker
