// The gRPC face of the daemon: stormbroker.v1.Broker on the callback API.
// Handlers never block: they identify the caller and give it a place among
// the calls of its connection and uid (or refuse it for a limit), validate,
// authorize, hand the call to the account's session and return; the
// session's callback finishes the reactor later on another thread. Every
// Call, Login, Logout and GetToken leaves one audit record, allowed or not.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <absl/synchronization/mutex.h>

#include "access/connection_table.h"
#include "access/policy.h"
#include "fleet/fleet.h"
#include "observe/audit_log.h"
#include "service/account_watch.h"
#include "service/call_desk.h"
#include "service/in_flight.h"
#include "stormbroker/v1/broker.grpc.pb.h"
#include "tokens/account_session.h"

namespace stormbroker {

class BrokerService final : public v1::Broker::CallbackService {
 public:
  BrokerService(ConnectionTable& connections, const PolicyHolder& policy, const AccountSessions& accounts,
                CallDesk& desk, AccountWatchHub& watches, AuditLog& audit, const Metrics& metrics,
                const Fleet* fleet = nullptr)
      : connections_(connections), policy_(policy), accounts_(accounts), desk_(desk), watches_(watches),
        audit_(audit), metrics_(metrics), fleet_(fleet) {}

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

  // Shutdown: new calls (Call, Login, Logout, GetToken) are answered
  // UNAVAILABLE from now on; returns once the calls in flight have finished
  // or `bound` has passed, and says which.
  bool Drain(std::chrono::milliseconds bound);

 private:
  // What an admitted call holds until it ends (the last copy goes).
  class Admission;
  // Who is calling and a place for the call: the caller's uid must be under
  // its limits, and the broker not draining (with `drains`). Otherwise null,
  // with `reactor` finished and a known caller's refusal audited. `record` is
  // started when the caller is known.
  std::shared_ptr<Admission> Admit(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                                   const char* rpc, const std::string& account, bool drains, AuditRecord* record);
  using Found = CallDesk::Found;
  // For Login, Logout and GetToken: the account when `allowed` says the
  // admitted caller may act on it. `record` says what was decided.
  Result<Found> Authorize(const Caller& caller, const std::string& account, const char* rpc,
                          bool (Policy::*allowed)(const Caller&, const std::string&) const, const char* needs,
                          AuditRecord* record);
  // Audits `record` with how it ended (CallDesk::Conclude: "invalid" unless
  // decided) and finishes `reactor` with `status`.
  grpc::ServerUnaryReactor* Conclude(grpc::ServerUnaryReactor* reactor, AuditRecord record, const Status& status);

  ConnectionTable& connections_;
  const PolicyHolder& policy_;
  const AccountSessions& accounts_;
  CallDesk& desk_;
  AccountWatchHub& watches_;
  AuditLog& audit_;
  const Metrics& metrics_;
  const Fleet* const fleet_;  // null outside fleet mode
  const std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  InFlight in_flight_;
};

}  // namespace stormbroker
