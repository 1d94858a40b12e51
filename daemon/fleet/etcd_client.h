// A synchronous client of etcd's v3 API (gRPC, generated from etcd's own
// protos), with a channel to each member of the cluster: a call goes to the
// member that answered last, and on to the next when that one cannot be
// reached. Each attempt is bounded by a short deadline, so that a dead cluster
// costs the caller seconds, not forever. One channel per member (rather than
// one balancing among them) so that TLS checks each member's certificate
// against that member's own address. With fleet.etcd.username, every call
// carries etcd's auth token (Authenticate with the password first, and
// again when etcd says the token expired). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <absl/synchronization/mutex.h>

#include "config/config.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "util/status.h"

namespace stormbroker {

class EtcdClient {
 public:
  // Reads the client certificate files of `fleet.etcd` (https) and opens
  // the channel; connecting happens on the first call.
  static Result<std::unique_ptr<EtcdClient>> Connect(const FleetConfig& fleet);

  Result<int64_t> Grant(std::chrono::seconds ttl);
  // NOT_FOUND when the lease has expired; UNAVAILABLE when etcd cannot be reached.
  Status KeepAlive(int64_t lease);
  Status Revoke(int64_t lease);
  Result<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  Result<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request);
  Result<etcdserverpb::PutResponse> Put(const std::string& key, const std::string& value, int64_t lease = 0);

  // Requests to a member that failed, since the start (for the metrics).
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

  // For a watch stream, whose context the caller owns (to cancel it): the
  // member that answered last, and the context's credentials.
  etcdserverpb::Watch::Stub& WatchStub() { return *members_[current_]->watch; }
  void Authorize(grpc::ClientContext& context) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct Member {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Auth::Stub> auth;
  };
  EtcdClient(std::vector<std::unique_ptr<Member>> members, std::string username, Secret password)
      : members_(std::move(members)), username_(std::move(username)), password_(std::move(password)) {}
  // A fresh auth token from etcd, for username_ (none without one).
  grpc::Status Authenticate() ABSL_LOCKS_EXCLUDED(mutex_);
  // Runs `attempt` on one member after another, from the one that answered
  // last, until one can be reached.
  grpc::Status OnAnyMember(const std::function<grpc::Status(Member&, grpc::ClientContext&)>& attempt);

  std::vector<std::unique_ptr<Member>> members_;
  std::atomic<size_t> current_{0};
  std::atomic<uint64_t> errors_{0};
  const std::string username_;  // empty: etcd's authentication is not used
  const Secret password_;
  absl::Mutex mutex_;
  Secret token_ ABSL_GUARDED_BY(mutex_);  // etcd's auth token, once authenticated
};

// What etcd's answer means, for messages: "etcd: <reason>".
Status FromGrpc(const grpc::Status& status);

}  // namespace stormbroker
