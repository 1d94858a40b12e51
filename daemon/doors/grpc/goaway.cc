#include "doors/grpc/goaway.h"

#include <grpcpp/alarm.h>

#include <chrono>

#include <absl/synchronization/notification.h>

// gRPC 1.51's public API has no GOAWAY without Shutdown; its core server
// has one, exported by libgrpc.so.29 and used by gRPC's own tests
// (grpc_core::Server::SendGoaways). A grpc_server is that object (the core
// converts between the two with a reinterpret_cast, CppImplOf::FromC).
namespace grpc_core {
class Server {
 public:
  void SendGoaways();
};
}  // namespace grpc_core

namespace stormbroker {

void SendGoaways(grpc::Server& server) {
  // The core's call needs the execution context of a gRPC thread: an
  // alarm's callback runs on one.
  absl::Notification sent;
  grpc::Alarm alarm;
  alarm.Set(std::chrono::system_clock::now(), [&server, &sent](bool) {
    reinterpret_cast<grpc_core::Server*>(server.c_server())->SendGoaways();
    sent.Notify();
  });
  sent.WaitForNotification();
}

}  // namespace stormbroker
