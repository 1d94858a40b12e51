// GOAWAY on every connection of a gRPC server that keeps serving: the first
// half of a restart that no client notices (daemon.cc, Daemon::Shutdown).
//
// gRPC 1.51 sends GOAWAY only from Server::Shutdown, and from then on it
// cancels (CANCELLED) every call that arrives before the client has read the
// GOAWAY. A client that reads its connection only while a call of its own is
// in flight (Python's grpcio, C++ sync stubs) sends its next call before it
// reads anything, so that call always fails. The same GOAWAY sent while the
// server still serves (HTTP/2's two-step one: "no new streams", a PING, then
// the last stream taken) costs no call: the client's next call is served,
// and from its answer on the client opens a new connection. An idle client
// reads it within its library's backup poll (5 s by default) and leaves too;
// gRPC closes each connection once its client has left and its calls ended.
#pragma once

#include <grpcpp/server.h>

namespace stormbroker {

// Sends the GOAWAY on every connection `server` holds now; returns once it
// is on its way. Connections that already had it are left alone. The server
// goes on serving, and a connection added later gets none.
void SendGoaways(grpc::Server& server);

}  // namespace stormbroker
