// The running daemon: wires the modules together, serves until SIGTERM or
// SIGINT, reloads the policy on SIGHUP, and shuts down gracefully.
#pragma once

#include "config/config.h"

namespace stormbroker {

// Returns the process exit code. SIGTERM, SIGINT and SIGHUP must be blocked
// in every thread before it is called (it takes them with sigwait).
int RunDaemon(Config config);

}  // namespace stormbroker
