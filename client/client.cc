#include "stormbroker/client.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <optional>
#include <string_view>

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "stormbroker/socket_trust.h"
#include "stormbroker/v1/broker.grpc.pb.h"
#include "struct_json.h"

namespace stormbroker::client {
namespace {

BrokerError FromStatus(const grpc::Status& status) {
  ErrorCode code = ErrorCode::kOther;
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: code = ErrorCode::kInvalidArgument; break;
    case grpc::StatusCode::NOT_FOUND: code = ErrorCode::kNotFound; break;
    case grpc::StatusCode::PERMISSION_DENIED: code = ErrorCode::kPermissionDenied; break;
    case grpc::StatusCode::FAILED_PRECONDITION: code = ErrorCode::kFailedPrecondition; break;
    case grpc::StatusCode::UNAVAILABLE: code = ErrorCode::kUnavailable; break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: code = ErrorCode::kDeadlineExceeded; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = ErrorCode::kResourceExhausted; break;
    default: break;
  }
  return BrokerError{code, status.error_message()};
}

// The proto's enum names the states once: ACCOUNT_STATE_NEEDS_PASSCODE is
// "needs-passcode", the word the daemon's own AccountStateName uses.
std::string StateName(v1::AccountState state) {
  constexpr std::string_view kPrefix = "ACCOUNT_STATE_";
  std::string name = v1::AccountState_Name(state);
  if (name.rfind(kPrefix, 0) != 0 || state == v1::ACCOUNT_STATE_UNSPECIFIED) return "unknown";
  name.erase(0, kPrefix.size());
  for (char& c : name) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::chrono::system_clock::time_point ToTimePoint(const google::protobuf::Timestamp& t) {
  return std::chrono::system_clock::time_point(
      std::chrono::milliseconds(google::protobuf::util::TimeUtil::TimestampToMilliseconds(t)));
}

AccountInfo ToInfo(const v1::Account& account) {
  AccountInfo info;
  info.name = account.name();
  info.username = account.username();
  info.state = StateName(account.state());
  if (account.has_inactivity_deadline()) info.inactivity_deadline = ToTimePoint(account.inactivity_deadline());
  if (account.has_hard_deadline()) info.hard_deadline = ToTimePoint(account.hard_deadline());
  if (account.has_renew_at()) info.renew_at = ToTimePoint(account.renew_at());
  info.last_error = account.last_error();
  info.warning = account.warning();
  info.two_factor = account.two_factor();
  info.fleet_role = account.fleet_role();
  info.fleet_leader = account.fleet_leader();
  if (account.has_paused_until()) info.paused_until = ToTimePoint(account.paused_until());
  info.upstream_protocol = account.upstream_protocol();
  return info;
}

class GrpcClient : public Client {
 public:
  GrpcClient(const std::string& socket_path, ConnectOptions options)
      : socket_path_(socket_path),
        options_(options),
        channel_(grpc::CreateChannel("unix:" + socket_path, grpc::InsecureChannelCredentials())),
        stub_(v1::Broker::NewStub(channel_)) {}

  Outcome<CallResult> Call(const std::string& account, const std::string& method, const nlohmann::json& params,
                           std::chrono::milliseconds timeout, bool fresh) override {
    // Params may hold secrets (a new server's root password).
    if (params.is_object() && !params.empty()) {
      if (auto refused = Untrusted("the params")) return *refused;
    }
    v1::CallRequest request;
    request.set_account(account);
    request.set_method(method);
    if (params.is_object()) JsonToStruct(params, request.mutable_params());
    v1::CallResponse response;
    if (auto failed = Unary(timeout, [&](grpc::ClientContext* context) {
          if (fresh) context->AddMetadata("cache-control", "no-cache");
          return stub_->Call(context, request, &response);
        })) {
      return *failed;
    }
    CallResult result;
    result.account = response.account();
    if (response.has_error()) {
      const v1::ApiError& error = response.error();
      result.api_error = ApiError{error.error_class(), error.message(), StructToJson(error.extra()), error.http_status()};
    } else {
      result.result = ValueToJson(response.result());
    }
    return result;
  }

  Outcome<AccountInfo> Login(const std::string& account, const std::string& passcode) override {
    if (auto refused = Untrusted("the passcode")) return *refused;
    v1::LoginRequest request;
    request.set_account(account);
    request.set_passcode(passcode);
    v1::LoginResponse response;
    if (auto failed = Unary(kAdminTimeout, [&](auto* context) { return stub_->Login(context, request, &response); })) {
      return *failed;
    }
    return ToInfo(response.account());
  }

  Outcome<Done> Logout(const std::string& account) override {
    v1::LogoutRequest request;
    request.set_account(account);
    v1::LogoutResponse response;
    if (auto failed = Unary(kAdminTimeout, [&](auto* context) { return stub_->Logout(context, request, &response); })) {
      return *failed;
    }
    return Done{};
  }

  Outcome<DaemonStatus> GetStatus() override {
    v1::GetStatusResponse response;
    if (auto failed = Unary(kReadTimeout, [&](auto* context) {
          return stub_->GetStatus(context, v1::GetStatusRequest(), &response);
        })) {
      return *failed;
    }
    DaemonStatus out;
    out.version = response.version();
    out.started_at = ToTimePoint(response.started_at());
    for (const v1::Account& account : response.accounts()) out.accounts.push_back(ToInfo(account));
    out.audit_records_dropped = response.audit_records_dropped();
    if (response.has_fleet()) {
      DaemonStatus::Fleet fleet{response.fleet().name(), response.fleet().connected(), response.fleet().detail(), {}};
      for (const auto& member : response.fleet().members()) fleet.members.push_back(member);
      out.fleet = std::move(fleet);
    }
    for (const v1::CallerLoad& load : response.callers()) {
      out.callers.push_back({load.account(), load.uid(), load.at_api(), load.waiting(),
                             std::chrono::milliseconds(load.longest_wait_ms())});
    }
    if (response.has_https_proxy()) {
      const v1::HttpsProxyStatus& proxy = response.https_proxy();
      out.https_proxy = DaemonStatus::HttpsProxy{proxy.address(), {proxy.hosts().begin(), proxy.hosts().end()},
                                                 proxy.ca_certificate()};
    }
    return out;
  }

  Outcome<MetricsSnapshot> GetMetrics() override {
    v1::GetMetricsResponse response;
    if (auto failed = Unary(kReadTimeout, [&](auto* context) {
          return stub_->GetMetrics(context, v1::GetMetricsRequest(), &response);
        })) {
      return *failed;
    }
    MetricsSnapshot out;
    out.text = response.text();
    for (const v1::MetricSample& sample : response.samples()) {
      out.samples.push_back({sample.name(), {sample.labels().begin(), sample.labels().end()}, sample.value()});
    }
    return out;
  }

  Outcome<std::string> GetToken(const std::string& account) override {
    if (auto refused = Untrusted("the token request")) return *refused;
    v1::GetTokenRequest request;
    request.set_account(account);
    v1::GetTokenResponse response;
    if (auto failed = Unary(kAdminTimeout, [&](auto* context) { return stub_->GetToken(context, request, &response); })) {
      return *failed;
    }
    return response.token();
  }

  BrokerError Watch(const std::function<bool(const AccountEvent&)>& on_event) override {
    grpc::ClientContext context;
    if (auto away = AwaitBroker(context); away) return *away;
    auto reader = stub_->WatchAccounts(&context, v1::WatchAccountsRequest());
    v1::AccountEvent event;
    while (reader->Read(&event)) {
      AccountEvent out{event.account(), StateName(event.state()), event.message(), ToTimePoint(event.time())};
      if (!on_event(out)) {
        context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) return BrokerError{ErrorCode::kOther, ""};
    return FromStatus(status);
  }

  Outcome<std::vector<AccountInfo>> ListAccounts() override {
    v1::ListAccountsResponse response;
    if (auto failed = Unary(kReadTimeout, [&](auto* context) {
          return stub_->ListAccounts(context, v1::ListAccountsRequest(), &response);
        })) {
      return *failed;
    }
    std::vector<AccountInfo> accounts;
    for (const v1::Account& account : response.accounts()) accounts.push_back(ToInfo(account));
    return accounts;
  }

 private:
  static constexpr std::chrono::milliseconds kReadTimeout{30'000};
  static constexpr std::chrono::milliseconds kAdminTimeout{60'000};  // a login waits for the upstream

  // One unary RPC: `rpc` on a fresh context with `timeout`, after
  // AwaitBroker.
  std::optional<BrokerError> Unary(std::chrono::milliseconds timeout,
                                   const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
    grpc::ClientContext context;
    if (auto away = AwaitBroker(context); away) return away;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    grpc::Status status = rpc(&context);
    if (!status.ok()) return FromStatus(status);
    return std::nullopt;
  }

  // Before a call: a missing socket is an error at once; a broker that does
  // not answer yet (starting or restarting) is waited for, at most
  // options_.wait_for_broker. The call itself then waits for the channel
  // to be ready again should the broker go away under it (a restart's
  // GOAWAY), within its own deadline.
  std::optional<BrokerError> AwaitBroker(grpc::ClientContext& context) {
    struct stat st {};
    if (stat(socket_path_.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return BrokerError{ErrorCode::kUnavailable, "no broker socket at " + socket_path_ +
                                                      ": is stormbrokerd running? (systemctl status stormbrokerd.socket)"};
    }
    // Waiting would only hide this: connecting needs write permission.
    if (access(socket_path_.c_str(), W_OK) != 0 && errno == EACCES) {
      return BrokerError{ErrorCode::kUnavailable, "cannot connect to the broker socket " + socket_path_ +
                                                      ": Permission denied (ask for membership of its group)"};
    }
    context.set_wait_for_ready(true);
    if (channel_->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) return std::nullopt;
    if (channel_->WaitForConnected(std::chrono::system_clock::now() + options_.wait_for_broker)) return std::nullopt;
    return BrokerError{ErrorCode::kUnavailable,
                       "the broker at " + socket_path_ + " did not answer within " +
                           std::to_string(options_.wait_for_broker.count()) + " ms"};
  }

  // Why `what` is not sent: the socket is not the broker's
  // (stormbroker/socket_trust.h). A verdict of trust holds for a second, so
  // that a loop of calls with params does not inspect the path each time.
  std::optional<BrokerError> Untrusted(const char* what) {
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    if (now < trusted_until_.load(std::memory_order_relaxed)) return std::nullopt;
    std::string problem = UntrustedSocket(socket_path_);
    if (!problem.empty()) return BrokerError{ErrorCode::kUnavailable, std::string("not sending ") + what + ": " + problem};
    trusted_until_ = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::seconds(1)).count();
    return std::nullopt;
  }

  const std::string socket_path_;
  std::atomic<std::chrono::steady_clock::rep> trusted_until_{0};
  const ConnectOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Broker::Stub> stub_;
};

}  // namespace

std::unique_ptr<Client> Client::Connect(const std::string& socket_path, ConnectOptions options) {
  return std::make_unique<GrpcClient>(socket_path, options);
}

}  // namespace stormbroker::client
