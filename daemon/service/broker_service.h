// The gRPC face of the daemon: stormbroker.v1.Broker on the callback API.
// Handlers never block: they identify the caller, validate, authorize, hand
// the call to the account's session and return; the session's callback
// finishes the reactor later on another thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "access/peer_registry.h"
#include "access/policy.h"
#include "service/account_watch.h"
#include "stormbroker/v1/broker.grpc.pb.h"
#include "tokens/account_session.h"

namespace stormbroker {

using AccountSessions = std::map<std::string, std::shared_ptr<AccountSession>>;

class BrokerService final : public v1::Broker::CallbackService {
 public:
  BrokerService(const PeerRegistry& peers, const Policy& policy, const AccountSessions& accounts,
                AccountWatchHub& watches)
      : peers_(peers), policy_(policy), accounts_(accounts), watches_(watches) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                                 v1::CallResponse* response) override;
  grpc::ServerUnaryReactor* ListAccounts(grpc::CallbackServerContext* context,
                                         const v1::ListAccountsRequest* request,
                                         v1::ListAccountsResponse* response) override;
  grpc::ServerUnaryReactor* Login(grpc::CallbackServerContext* context, const v1::LoginRequest* request,
                                  v1::LoginResponse* response) override;
  grpc::ServerUnaryReactor* Logout(grpc::CallbackServerContext* context, const v1::LogoutRequest* request,
                                   v1::LogoutResponse* response) override;
  grpc::ServerWriteReactor<v1::AccountEvent>* WatchAccounts(grpc::CallbackServerContext* context,
                                                            const v1::WatchAccountsRequest* request) override;

 private:
  // The named account (or the only one when `name` is empty), or why not.
  Result<std::pair<std::string, std::shared_ptr<AccountSession>>> FindAccount(const std::string& name) const;
  // The caller, the account and its session when the caller may administer it.
  Result<std::pair<std::string, std::shared_ptr<AccountSession>>> AdminAccess(grpc::CallbackServerContext* context,
                                                                             const std::string& account,
                                                                             const char* action) const;

  const PeerRegistry& peers_;
  const Policy& policy_;
  const AccountSessions& accounts_;
  AccountWatchHub& watches_;
};

}  // namespace stormbroker
