// The daemon's own accept loop on its Unix socket. gRPC 1.51 cannot tell a
// handler who is calling over a Unix socket, so the daemon accepts each
// connection itself, learns the caller from the kernel (SO_PEERCRED,
// SO_PEERGROUPS), admits it to the ConnectionTable (which may refuse it for
// a limit) and only then hands the fd to gRPC.
#pragma once

#include <grpcpp/server.h>

#include <functional>
#include <memory>

#include "access/connection_table.h"
#include "config/config.h"
#include "util/status.h"

namespace stormbroker {

// Told of each connection refused for a limit, with who and why.
using ConnectionRefused = std::function<void(const Caller&, const Status&)>;

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

  // Starts accepting, on the thread of `connections` (which must outlive
  // this listener); each connection is admitted to `connections` and added
  // to `server`, or closed and reported to `refused`.
  Status Start(grpc::Server* server, ConnectionTable* connections, ConnectionRefused refused);
  // Stops accepting, closes the socket and removes its file. Idempotent.
  void Stop();

 private:
  UnixListener(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  // Accepts every connection waiting.
  void AcceptWaiting(grpc::Server* server, ConnectionTable* connections, const ConnectionRefused& refused);

  int fd_;  // -1 once stopped
  std::string path_;
  ConnectionTable* connections_ = nullptr;  // set while accepting
};

// A listening, non-blocking Unix stream socket at `path`, with `mode` and
// `group` set before anyone can connect. A stale socket left by a dead
// daemon is replaced; a live one is refused ("another stormbrokerd is serving
// PATH"); a non-socket file is left alone. The caller owns the fd.
Result<int> OpenUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group);

// Hands `fd` (a connected, non-blocking socket) to gRPC after admitting who
// is on its other end. Otherwise closes it and says why: the caller is
// unknown (the kernel did not say) or over a limit (`refused` hears of it).
Status AdoptConnection(int fd, grpc::Server* server, ConnectionTable* connections,
                       const ConnectionRefused& refused = nullptr);

}  // namespace stormbroker
