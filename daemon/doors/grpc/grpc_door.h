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

class GrpcDoor : public Door {
 public:
  // The services' parts, which must outlive the door. Callers are admitted
  // by the core through `connections`; gRPC's threads are nudged on
  // `scheduler`; `accounts` each have a health service name.
  GrpcDoor(BrokerCore& core, AccountWatchHub& watches, AuditLog& audit, const HttpEngine& engine,
           const Fleet* fleet, DescribeHttpsProxy describe_proxy, ConnectionTable& connections,
           Scheduler& scheduler, std::vector<std::string> accounts);
  GrpcDoor(const GrpcDoor&) = delete;
  GrpcDoor& operator=(const GrpcDoor&) = delete;

  // Builds the server (messages over limits.max_request_bytes refused
  // before a handler, limits.calls_per_connection streams per connection,
  // every service SERVING and each account NOT_SERVING until told
  // otherwise), checks that the kernel names its callers (self_test.h),
  // and accepts them on the socket systemd passed or on listen.socket.
  Status Start(const Config& config, const PassedSockets& passed) override;
  std::string Describe() const override;
  // GOAWAY on every connection; the server serves on.
  void GoAway() override;
  void StopAccepting() override;
  // Waits for the calls in flight until `deadline`, then cancels them, and
  // returns once the server is down. Safe beside the other calls: the
  // wiring runs it on a thread of its own while the core drains.
  void Stop(std::chrono::system_clock::time_point deadline) override;

  // Whether systemd passed the listening socket and keeps it: a restart
  // hands the clients over to the next process.
  bool handed_over_by_systemd() const { return handed_over_by_systemd_; }
  void SetAccountHealth(const std::string& account, bool serving);
  void SetFleetHealth(bool connected);
  // The nudge stopped and every service NOT_SERVING: the start of a shutdown.
  void StopServing();

 private:
  Status Build(const LimitsConfig& limits);
  Status Listen(const ListenConfig& listen, std::optional<int> passed);

  BrokerCore& core_;
  ConnectionTable& connections_;
  Scheduler& scheduler_;
  const std::vector<std::string> accounts_;
  BrokerService service_;
  HealthService health_;
  std::string where_;  // once listening
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<UnixListener> listener_;
  std::unique_ptr<GrpcThreadNudge> nudge_;
  bool handed_over_by_systemd_ = false;
  // Last, so first to go: the nudge, then the listener, then the server.
};

}  // namespace stormbroker
