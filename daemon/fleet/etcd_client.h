// A synchronous client of etcd's v3 API (gRPC, generated from etcd's own
// protos), on one channel to all the cluster's members: calls go to a member
// that is up, and each is bounded by a short deadline so that a dead cluster
// costs the caller seconds, not forever. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

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

  // For a watch stream, whose context the caller owns (to cancel it).
  etcdserverpb::Watch::Stub& WatchStub() { return *watch_; }

 private:
  explicit EtcdClient(std::shared_ptr<grpc::Channel> channel);
  static void Bound(grpc::ClientContext& context);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
};

// What etcd's answer means, for messages: "etcd: <reason>".
Status FromGrpc(const grpc::Status& status);

}  // namespace stormbroker
