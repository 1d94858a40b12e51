// Start-up check that the caller-identity scheme works with this gRPC build.
// It relies on gRPC naming a fd-added connection's peer "fd:N", which is an
// implementation detail: if a future gRPC changes it, the daemon must refuse to
// serve rather than serve callers it cannot tell apart.
#pragma once

#include <grpcpp/server.h>

#include "broker/broker_core.h"
#include "util/status.h"

namespace stormbroker {

// Calls ListAccounts over a socketpair handed to `server` like an accepted
// connection; OK when the handler identified the caller from its peer string.
Status CheckPeerIdentification(grpc::Server* server, BrokerCore* core);

}  // namespace stormbroker
