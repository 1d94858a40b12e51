// Unix stream sockets the daemon listens on (the gRPC door, the HTTP door).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/status.h"

namespace stormbroker {

// A listening, non-blocking Unix stream socket at `path`, with `mode` and
// `group` set before anyone can connect. A stale socket left by a dead
// daemon is replaced; a live one is refused ("another stormbrokerd is serving
// PATH"); a non-socket file is left alone. The caller owns the fd.
Result<int> OpenUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group);

}  // namespace stormbroker
