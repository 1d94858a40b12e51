// The gRPC door, whole: stormbroker.v1.Broker and health (with reflection,
// so generic gRPC tools find their way around) on one server, the Unix
// listener in front of it (opened, or the one systemd passed), the nudge
// that keeps gRPC's threads awake (thread_nudge.h) and GOAWAY without shutting
// the server down (goaway.h). The daemon wires it; it includes no other door.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "broker/broker_core.h"
#include "doors/door.h"
#include "doors/grpc/account_watch.h"
#include "doors/grpc/broker_service.h"
#include "doors/grpc/health_service.h"
#include "doors/grpc/thread_nudge.h"
#include "doors/grpc/unix_listener.h"
#include "runtime/scheduler.h"

namespace stormbroker {

class GrpcDoor {
 public:
  // The services' parts, which must outlive the door.
  GrpcDoor(BrokerCore& core, AccountWatchHub& watches, AuditLog& audit, const HttpEngine& engine,
           const Fleet* fleet, DescribeHttpsProxy describe_proxy);
  GrpcDoor(const GrpcDoor&) = delete;
  GrpcDoor& operator=(const GrpcDoor&) = delete;

  // Builds and starts the server, not yet listening: messages over
  // limits.max_request_bytes refused before a handler, limits.calls_per_connection
  // streams per connection, every service SERVING and each of `accounts`
  // NOT_SERVING until told otherwise; then checks that the kernel names
  // the server's callers (self_test.h).
  Status Build(const LimitsConfig& limits, const std::vector<std::string>& accounts);
  // Accepts callers on `passed` (a listening socket systemd passed) or on
  // listen.socket, each admitted by the core through `connections`, and
  // starts nudging gRPC's threads on `scheduler`. After Build.
  Status Listen(const ListenConfig& listen, std::optional<int> passed, ConnectionTable& connections,
                Scheduler& scheduler);
  // Whether systemd passed the listening socket and keeps it: a restart
  // hands the clients over to the next process.
  bool handed_over_by_systemd() const { return handed_over_by_systemd_; }

  void SetAccountHealth(const std::string& account, bool serving);
  void SetFleetHealth(bool connected);

  // Every client is told to go away (GOAWAY); the server serves on.
  void GoAway();
  void StopAccepting();
  // The nudge stopped and every service NOT_SERVING: the start of a shutdown.
  void StopServing();
  // Waits for the calls in flight until `deadline`, then cancels them.
  // Safe from another thread than Wait's.
  void Shutdown(std::chrono::system_clock::time_point deadline);
  // Returns once the server has shut down (after Shutdown).
  void Wait();

 private:
  BrokerCore& core_;
  BrokerService service_;
  HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<UnixListener> listener_;
  std::unique_ptr<GrpcThreadNudge> nudge_;
  bool handed_over_by_systemd_ = false;
  // Last, so first to go: the nudge, then the listener, then the server.
};

}  // namespace stormbroker
