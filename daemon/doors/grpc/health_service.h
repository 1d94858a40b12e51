// grpc.health.v1.Health, answered per caller. The broker as a whole ("" and
// "stormbroker.v1.Broker") is anyone's to ask about; an account
// ("account:NAME") only for callers that policy admits to it: for the others
// it does not exist (NOT_FOUND, or SERVICE_UNKNOWN on Watch), the way
// ListAccounts leaves it out. gRPC's default health service cannot tell
// callers apart, so the daemon serves this one instead.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <set>
#include <string>
#include <absl/synchronization/mutex.h>

#include "broker/broker_core.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace stormbroker {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  explicit HealthService(BrokerCore& core) : core_(core) {}

  // The health name of an account.
  static std::string AccountName(const std::string& account) { return "account:" + account; }
  // Fleet mode: SERVING while this machine is in touch with the fleet's etcd.
  static constexpr const char* kFleet = "fleet";
  // Sets (or creates) a service's status; watches of it hear of a change.
  void Set(const std::string& service, bool serving);
  // Every service NOT_SERVING from now on, and every watch told so and ended.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context, const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  // The status of `service` for a caller that `visible` says may see it;
  // SERVICE_UNKNOWN otherwise.
  ServingStatus StatusLocked(const std::string& service, bool visible) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Whether `caller` (none: an in-process call, which only sees the broker
  // as a whole) may know of `service`.
  bool Visible(const Caller* caller, const std::string& service) const;
  void Remove(Watcher* watcher) ABSL_LOCKS_EXCLUDED(mutex_);
  // The core's request for this call's connection, holding a place among the
  // caller's calls; none for an in-process call, or when refused (then
  // `refusal` says why).
  std::optional<Request> Begin(grpc::CallbackServerContext* context, Status* refusal);

  BrokerCore& core_;
  mutable absl::Mutex mutex_;
  std::map<std::string, bool> serving_ ABSL_GUARDED_BY(mutex_);
  bool shut_down_ ABSL_GUARDED_BY(mutex_) = false;
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace stormbroker
