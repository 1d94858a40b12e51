#include "fleet/etcd_client.h"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

namespace stormbroker {
namespace {

constexpr std::chrono::seconds kCallDeadline(2);

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return InvalidArgument("cannot read " + path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// gRPC's target for all the members: "ipv4:A:P,B:P" (or ipv6:) for numeric
// addresses, so that the channel balances and fails over among them; a
// single name goes through DNS.
Result<std::string> TargetOf(const std::vector<EtcdEndpoint>& endpoints) {
  in_addr v4{};
  in6_addr v6{};
  bool all_v4 = true, all_v6 = true;
  for (const auto& e : endpoints) {
    all_v4 = all_v4 && inet_pton(AF_INET, e.host.c_str(), &v4) == 1;
    all_v6 = all_v6 && inet_pton(AF_INET6, e.host.c_str(), &v6) == 1;
  }
  if (all_v4 || all_v6) {
    std::string target = all_v4 ? "ipv4:" : "ipv6:";
    for (size_t i = 0; i < endpoints.size(); ++i) {
      if (i) target += ",";
      target += all_v4 ? endpoints[i].host : "[" + endpoints[i].host + "]";
      target += ":" + std::to_string(endpoints[i].port);
    }
    return target;
  }
  if (endpoints.size() == 1) return "dns:///" + endpoints[0].host + ":" + std::to_string(endpoints[0].port);
  return InvalidArgument("fleet.etcd.endpoints: name several members by address (all IPv4 or all IPv6), or give "
                         "one name that resolves to them");
}

}  // namespace

Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  StatusCode code = status.error_code() == grpc::StatusCode::NOT_FOUND ? StatusCode::kNotFound
                    : status.error_code() == grpc::StatusCode::FAILED_PRECONDITION
                        ? StatusCode::kFailedPrecondition
                        : StatusCode::kUnavailable;
  return Status(code, "etcd: " + status.error_message());
}

Result<std::unique_ptr<EtcdClient>> EtcdClient::Connect(const FleetConfig& fleet) {
  auto target = TargetOf(fleet.endpoints);
  if (!target.ok()) return target.status();
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (fleet.endpoints.front().tls) {
    grpc::SslCredentialsOptions options;
    if (!fleet.ca_file.empty()) {
      auto ca = ReadFile(fleet.ca_file);
      if (!ca.ok()) return ca.status();
      options.pem_root_certs = *ca;
    }
    auto cert = ReadFile(fleet.cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadSecretFile(fleet.key_file);
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = std::string(key->Reveal());
    credentials = grpc::SslCredentials(options);
    Secret wipe(std::move(options.pem_private_key));
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments arguments;
  arguments.SetLoadBalancingPolicyName("round_robin");
  // A member that died is noticed within seconds, not at the next call's deadline.
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return std::unique_ptr<EtcdClient>(new EtcdClient(grpc::CreateCustomChannel(*target, credentials, arguments)));
}

EtcdClient::EtcdClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      kv_(etcdserverpb::KV::NewStub(channel_)),
      lease_(etcdserverpb::Lease::NewStub(channel_)),
      watch_(etcdserverpb::Watch::NewStub(channel_)) {}

void EtcdClient::Bound(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
}

Result<int64_t> EtcdClient::Grant(std::chrono::seconds ttl) {
  grpc::ClientContext context;
  Bound(context);
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl.count());
  etcdserverpb::LeaseGrantResponse response;
  if (Status status = FromGrpc(lease_->LeaseGrant(&context, request, &response)); !status.ok()) return status;
  if (!response.error().empty()) return Unavailable("etcd: " + response.error());
  return response.id();
}

Status EtcdClient::KeepAlive(int64_t lease) {
  // One short stream per keep-alive: a member that dies mid-stream costs one
  // deadline, and the next keep-alive goes to another member.
  grpc::ClientContext context;
  Bound(context);
  auto stream = lease_->LeaseKeepAlive(&context);
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse response;
  bool answered = stream->Write(request) && stream->Read(&response);
  stream->WritesDone();
  context.TryCancel();
  grpc::Status finished = stream->Finish();
  if (!answered) return finished.ok() ? Unavailable("etcd: the keep-alive got no answer") : FromGrpc(finished);
  if (response.ttl() <= 0) return NotFound("etcd: the lease has expired");
  return Status::Ok();
}

Status EtcdClient::Revoke(int64_t lease) {
  grpc::ClientContext context;
  Bound(context);
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  return FromGrpc(lease_->LeaseRevoke(&context, request, &response));
}

Result<etcdserverpb::RangeResponse> EtcdClient::Range(const etcdserverpb::RangeRequest& request) {
  grpc::ClientContext context;
  Bound(context);
  etcdserverpb::RangeResponse response;
  if (Status status = FromGrpc(kv_->Range(&context, request, &response)); !status.ok()) return status;
  return response;
}

Result<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request) {
  grpc::ClientContext context;
  Bound(context);
  etcdserverpb::TxnResponse response;
  if (Status status = FromGrpc(kv_->Txn(&context, request, &response)); !status.ok()) return status;
  return response;
}

Result<etcdserverpb::PutResponse> EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  grpc::ClientContext context;
  Bound(context);
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  if (Status status = FromGrpc(kv_->Put(&context, request, &response)); !status.ok()) return status;
  return response;
}

}  // namespace stormbroker
