// The WatchAccounts stream: an AccountEventSink that fans account events out
// to every open watch, each filtered by what its caller may see.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <set>
#include <absl/synchronization/mutex.h>

#include "access/connection_table.h"
#include "access/policy.h"
#include "stormbroker/v1/broker.grpc.pb.h"
#include "tokens/account_events.h"

namespace stormbroker {

class AccountWatchHub : public AccountEventSink {
 public:
  explicit AccountWatchHub(const PolicyHolder& policy) : policy_(policy) {}

  void Publish(const AccountEvent& event) override;
  // Opens a watch for the ticket's caller, which holds its place among the
  // caller's calls until the stream ends; the reactor deletes itself then.
  grpc::ServerWriteReactor<v1::AccountEvent>* Open(std::shared_ptr<const CallTicket> ticket);
  // Ends every open watch (at shutdown, so the server can stop).
  void CloseAll();

 private:
  class Watch;
  void Remove(Watch* watch) ABSL_LOCKS_EXCLUDED(mutex_);

  const PolicyHolder& policy_;
  absl::Mutex mutex_;
  std::set<Watch*> watches_ ABSL_GUARDED_BY(mutex_);
};

v1::AccountState ToProto(AccountState state);

}  // namespace stormbroker
