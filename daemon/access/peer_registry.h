// Maps the connections the daemon accepted to their callers.
//
// gRPC 1.51 names the peer of a connection added with AddInsecureChannelFromFd
// "fd:N". The accept loop records fd N's caller before handing the fd to gRPC;
// a handler looks its peer string up here. gRPC does not reuse the number while
// a call on it is alive, and a new accept of the same number overwrites the
// stale record before gRPC sees the fd.
#pragma once

#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "access/caller.h"

namespace stormbroker {

class PeerRegistry {
 public:
  void Record(int fd, Caller caller);
  // The caller behind a gRPC peer string, or nothing when the string is not
  // of the "fd:N" form or N was never recorded.
  std::optional<Caller> Lookup(std::string_view peer) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<int, Caller> callers_;
};

}  // namespace stormbroker
