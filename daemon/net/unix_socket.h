// Unix stream sockets the daemon listens on (the gRPC door, the HTTP door).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/status.h"

namespace stormbroker {

// The file a listening socket was bound to, as it was right after bind().
// Remove() unlinks it at most once, and only while the path still names
// that very file (same device and inode): a daemon started while this one
// drained has bound a socket of its own there, which is not ours to remove.
class SocketFile {
 public:
  SocketFile() = default;
  SocketFile(std::string path, dev_t device, ino_t inode)
      : path_(std::move(path)), device_(device), inode_(inode) {}
  void Remove();

 private:
  std::string path_;  // empty once removed (or never bound)
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// A listening, non-blocking Unix stream socket at `path`, with `mode` and
// `group` set before anyone can connect. A stale socket left by a dead
// daemon is replaced; a live one is refused ("another stormbrokerd is serving
// PATH"); a non-socket file is left alone. The caller owns the fd, and
// `file` (when given) is the file to remove when done.
Result<int> OpenUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group,
                           SocketFile* file = nullptr);

}  // namespace stormbroker
