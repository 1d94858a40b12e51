// The gRPC door: stormbroker.v1.Broker on the callback API, a translator
// between gRPC and the broker's core (broker/broker_core.h). Handlers never
// block: they find the call's connection (grpc_peer.h), hand the request to
// the core step by step, and return; the core's callback finishes the
// reactor later on another thread. Every Call, Login, Logout and GetToken
// leaves one audit record (the core's), allowed or not.
#pragma once

#include <memory>
#include <string>

#include "broker/broker_core.h"
#include "doors/grpc/account_watch.h"
#include "doors/door.h"
#include "fleet/fleet.h"
#include "observe/audit_log.h"
#include "upstream/http_engine.h"
#include "stormbroker/v1/broker.grpc.pb.h"

namespace stormbroker {

class BrokerService final : public v1::Broker::CallbackService {
 public:
  // `engine` tells who waits for the API (status).
  BrokerService(BrokerCore& core, AccountWatchHub& watches, AuditLog& audit, const HttpEngine& engine,
                const Fleet* fleet = nullptr, DescribeHttpsProxy describe_proxy = nullptr)
      : core_(core), watches_(watches), audit_(audit), engine_(engine), fleet_(fleet),
        describe_proxy_(std::move(describe_proxy)) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                                 v1::CallResponse* response) override;
  grpc::ServerUnaryReactor* ListAccounts(grpc::CallbackServerContext* context,
                                         const v1::ListAccountsRequest* request,
                                         v1::ListAccountsResponse* response) override;
  grpc::ServerUnaryReactor* Login(grpc::CallbackServerContext* context, const v1::LoginRequest* request,
                                  v1::LoginResponse* response) override;
  grpc::ServerUnaryReactor* Logout(grpc::CallbackServerContext* context, const v1::LogoutRequest* request,
                                   v1::LogoutResponse* response) override;
  grpc::ServerUnaryReactor* GetToken(grpc::CallbackServerContext* context, const v1::GetTokenRequest* request,
                                     v1::GetTokenResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context, const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* context, const v1::GetMetricsRequest* request,
                                       v1::GetMetricsResponse* response) override;
  grpc::ServerWriteReactor<v1::AccountEvent>* WatchAccounts(grpc::CallbackServerContext* context,
                                                            const v1::WatchAccountsRequest* request) override;

 private:
  // The core's request for `rpc` on this call's connection (see
  // BrokerCore::Begin); when refused, `reactor` is finished with why.
  std::optional<Request> Begin(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor, Rpc rpc,
                               bool drains);
  // Runs a unary handler's `body` (for `rpc`) with the call's reactor. Nothing it throws
  // may reach gRPC's threads (std::terminate would end the daemon): the core
  // logs and audits it (BrokerCore::Fault) and the call ends INTERNAL.
  template <class Body>
  grpc::ServerUnaryReactor* Guard(grpc::CallbackServerContext* context, Rpc rpc, Body&& body) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    try {
      return body(reactor);
    } catch (const std::exception& e) {
      return Faulted(context, reactor, rpc, e.what());
    } catch (...) {
      return Faulted(context, reactor, rpc, "an exception of unknown type");
    }
  }
  grpc::ServerUnaryReactor* Faulted(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor, Rpc rpc,
                                    std::string_view what);
  // What the engine knows of each account: a pause the API asked for, and
  // the protocol its answers come in.
  void AddUpstreamState(google::protobuf::RepeatedPtrField<v1::Account>* accounts) const;

  BrokerCore& core_;
  AccountWatchHub& watches_;
  AuditLog& audit_;
  const HttpEngine& engine_;
  const Fleet* const fleet_;  // null outside fleet mode
  const DescribeHttpsProxy describe_proxy_;  // null in tests without one
  const std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

// The gRPC status for a broker status.
grpc::Status ToGrpc(const Status& status);

}  // namespace stormbroker
