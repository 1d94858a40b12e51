// The daemon's own accept loop on its Unix socket. gRPC 1.51 cannot tell a
// handler who is calling over a Unix socket, so the daemon accepts each
// connection itself, learns the caller from the kernel (SO_PEERCRED), records
// it in the PeerRegistry and only then hands the fd to gRPC.
#pragma once

#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <thread>

#include "access/peer_registry.h"
#include "config/config.h"
#include "util/status.h"

namespace stormbroker {

class UnixListener {
 public:
  // Creates, binds and listens on config.socket_path with config.mode.
  // A stale socket left by a dead daemon is replaced; a live one is refused
  // ("another stormbrokerd is serving PATH"); a non-socket file is left alone.
  static Result<std::unique_ptr<UnixListener>> Open(const ListenConfig& config);
  // The socket systemd passed (socket activation, fd 3), if it passed one.
  // systemd owns its file: Stop closes the fd and leaves the file alone.
  static Result<std::unique_ptr<UnixListener>> FromSystemd();
  ~UnixListener();

  // Starts accepting; each connection is recorded in `peers` and added to `server`.
  void Start(grpc::Server* server, PeerRegistry* peers);
  // Stops accepting, closes the socket and removes its file. Idempotent.
  void Stop();

 private:
  UnixListener(int fd, std::string path, int wake_fd) : fd_(fd), wake_fd_(wake_fd), path_(std::move(path)) {}
  void Loop(grpc::Server* server, PeerRegistry* peers);

  int fd_;
  int wake_fd_;  // eventfd that interrupts the poll on Stop
  std::string path_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

// Hands `fd` (a connected, non-blocking socket) to gRPC after recording who is
// on its other end. False when the peer cannot be identified (fd closed).
bool AdoptConnection(int fd, grpc::Server* server, PeerRegistry* peers);

}  // namespace stormbroker
