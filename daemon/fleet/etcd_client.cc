#include "fleet/etcd_client.h"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

namespace stormbroker {
namespace {

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return InvalidArgument("cannot read " + path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// gRPC's target for one member: its address as it is written, so that TLS
// checks the member's certificate against it.
std::string TargetOf(const EtcdEndpoint& endpoint) {
  in_addr v4{};
  in6_addr v6{};
  std::string port = ":" + std::to_string(endpoint.port);
  if (inet_pton(AF_INET, endpoint.host.c_str(), &v4) == 1) return "ipv4:" + endpoint.host + port;
  if (inet_pton(AF_INET6, endpoint.host.c_str(), &v6) == 1) return "ipv6:[" + endpoint.host + "]" + port;
  return "dns:///" + endpoint.host + port;
}

constexpr std::chrono::seconds kCallDeadline(2);

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
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (fleet.endpoints.front().tls) {
    grpc::SslCredentialsOptions options;
    if (!fleet.ca_file.empty()) {
      auto ca = ReadFile(fleet.ca_file);
      if (!ca.ok()) return ca.status();
      options.pem_root_certs = *ca;
    }
    if (!fleet.client_cert_file.empty()) {
      auto cert = ReadFile(fleet.client_cert_file);
      if (!cert.ok()) return cert.status();
      auto key = ReadSecretFile(fleet.client_key_file);
      if (!key.ok()) return key.status();
      options.pem_cert_chain = *cert;
      options.pem_private_key = std::string(key->Reveal());
    }
    credentials = grpc::SslCredentials(options);
    Secret wipe(std::move(options.pem_private_key));
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments arguments;
  // A member that died under a watch is noticed within seconds (etcd accepts
  // pings every 5 s at the most by default).
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3'000);
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  std::vector<std::unique_ptr<Member>> members;
  for (const EtcdEndpoint& endpoint : fleet.endpoints) {
    auto member = std::make_unique<Member>();
    member->channel = grpc::CreateCustomChannel(TargetOf(endpoint), credentials, arguments);
    member->kv = etcdserverpb::KV::NewStub(member->channel);
    member->lease = etcdserverpb::Lease::NewStub(member->channel);
    member->watch = etcdserverpb::Watch::NewStub(member->channel);
    member->auth = etcdserverpb::Auth::NewStub(member->channel);
    members.push_back(std::move(member));
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(members), fleet.username, fleet.password.Clone()));
}

void EtcdClient::Authorize(grpc::ClientContext& context) {
  if (username_.empty()) return;
  absl::MutexLock lock(&mutex_);
  if (!token_.empty()) context.AddMetadata("token", std::string(token_.Reveal()));
}

grpc::Status EtcdClient::Authenticate() {
  etcdserverpb::AuthenticateRequest request;
  request.set_name(username_);
  request.set_password(std::string(password_.Reveal()));
  etcdserverpb::AuthenticateResponse response;
  grpc::Status status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "no etcd member");
  for (size_t k = 0; k < members_.size(); ++k) {
    size_t index = (current_ + k) % members_.size();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    status = members_[index]->auth->Authenticate(&context, request, &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      break;
    }
  }
  Secret wipe(std::move(*request.mutable_password()));
  if (status.ok()) {
    absl::MutexLock lock(&mutex_);
    token_ = Secret(std::move(*response.mutable_token()));
  }
  return status;
}

grpc::Status EtcdClient::OnAnyMember(const std::function<grpc::Status(Member&, grpc::ClientContext&)>& attempt) {
  bool authenticated = false;
  if (!username_.empty()) {
    bool have_token;
    {
      absl::MutexLock lock(&mutex_);
      have_token = !token_.empty();
    }
    if (!have_token) {
      if (grpc::Status status = Authenticate(); !status.ok()) return status;
      authenticated = true;
    }
  }
  size_t first = current_;
  grpc::Status status;
  for (size_t k = 0; k < members_.size();) {
    size_t index = (first + k) % members_.size();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    Authorize(context);
    status = attempt(*members_[index], context);
    if (!status.ok()) errors_.fetch_add(1, std::memory_order_relaxed);
    // etcd's simple tokens expire after minutes of disuse: the same member
    // again, once, with a new one.
    if (!username_.empty() && !authenticated && status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      if (grpc::Status renewed = Authenticate(); !renewed.ok()) return renewed;
      authenticated = true;
      continue;
    }
    bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!unreachable) {
      current_ = index;
      return status;
    }
    ++k;
  }
  return status;
}

Result<int64_t> EtcdClient::Grant(std::chrono::seconds ttl) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl.count());
  etcdserverpb::LeaseGrantResponse response;
  Status status = FromGrpc(OnAnyMember([&](Member& member, grpc::ClientContext& context) {
    return member.lease->LeaseGrant(&context, request, &response);
  }));
  if (!status.ok()) return status;
  if (!response.error().empty()) return Unavailable("etcd: " + response.error());
  return response.id();
}

Status EtcdClient::KeepAlive(int64_t lease) {
  // One short stream per keep-alive: a member that dies mid-stream costs one
  // deadline, and the next keep-alive goes to another member.
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse response;
  grpc::Status outcome = OnAnyMember([&](Member& member, grpc::ClientContext& context) {
    auto stream = member.lease->LeaseKeepAlive(&context);
    bool answered = stream->Write(request) && stream->Read(&response);
    stream->WritesDone();
    context.TryCancel();
    grpc::Status finished = stream->Finish();
    if (answered) return grpc::Status::OK;
    return finished.ok() || finished.error_code() == grpc::StatusCode::CANCELLED
               ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "the keep-alive got no answer")
               : finished;
  });
  if (Status status = FromGrpc(outcome); !status.ok()) return status;
  if (response.ttl() <= 0) return NotFound("etcd: the lease has expired");
  return Status::Ok();
}

Status EtcdClient::Revoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  return FromGrpc(OnAnyMember([&](Member& member, grpc::ClientContext& context) {
    return member.lease->LeaseRevoke(&context, request, &response);
  }));
}

Result<etcdserverpb::RangeResponse> EtcdClient::Range(const etcdserverpb::RangeRequest& request) {
  etcdserverpb::RangeResponse response;
  Status status = FromGrpc(OnAnyMember([&](Member& member, grpc::ClientContext& context) {
    return member.kv->Range(&context, request, &response);
  }));
  if (!status.ok()) return status;
  return response;
}

Result<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request) {
  etcdserverpb::TxnResponse response;
  Status status = FromGrpc(OnAnyMember([&](Member& member, grpc::ClientContext& context) {
    return member.kv->Txn(&context, request, &response);
  }));
  if (!status.ok()) return status;
  return response;
}

Result<etcdserverpb::PutResponse> EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  Status status = FromGrpc(OnAnyMember([&](Member& member, grpc::ClientContext& context) {
    return member.kv->Put(&context, request, &response);
  }));
  if (!status.ok()) return status;
  return response;
}

}  // namespace stormbroker
