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
#include "stormbroker/v1/broker.grpc.pb.h"
#include "tokens/account_session.h"

namespace stormbroker {

using AccountSessions = std::map<std::string, std::shared_ptr<AccountSession>>;

class BrokerService final : public v1::Broker::CallbackService {
 public:
  BrokerService(const PeerRegistry& peers, const Policy& policy, const AccountSessions& accounts)
      : peers_(peers), policy_(policy), accounts_(accounts) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                                 v1::CallResponse* response) override;
  grpc::ServerUnaryReactor* ListAccounts(grpc::CallbackServerContext* context,
                                         const v1::ListAccountsRequest* request,
                                         v1::ListAccountsResponse* response) override;

 private:
  const PeerRegistry& peers_;
  const Policy& policy_;
  const AccountSessions& accounts_;
};

}  // namespace stormbroker
