#include "stormbroker/client.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "stormbroker/v1/broker.grpc.pb.h"
#include "struct_json.h"

namespace stormbroker {
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
    default: break;
  }
  return BrokerError{code, status.error_message()};
}

const char* StateName(v1::AccountState state) {
  switch (state) {
    case v1::ACCOUNT_STATE_STARTING: return "starting";
    case v1::ACCOUNT_STATE_ACTIVE: return "active";
    case v1::ACCOUNT_STATE_REFRESHING: return "refreshing";
    case v1::ACCOUNT_STATE_NEEDS_PASSCODE: return "needs-passcode";
    case v1::ACCOUNT_STATE_LOGIN_FAILED: return "login-failed";
    case v1::ACCOUNT_STATE_UNREACHABLE: return "unreachable";
    default: return "unknown";
  }
}

std::chrono::system_clock::time_point ToTimePoint(const google::protobuf::Timestamp& t) {
  return std::chrono::system_clock::time_point(
      std::chrono::milliseconds(google::protobuf::util::TimeUtil::TimestampToMilliseconds(t)));
}

class GrpcClient : public Client {
 public:
  explicit GrpcClient(const std::string& socket_path)
      : stub_(v1::Broker::NewStub(grpc::CreateChannel("unix:" + socket_path, grpc::InsecureChannelCredentials()))) {}

  Outcome<CallResult> Call(const std::string& account, const std::string& method, const nlohmann::json& params,
                           std::chrono::milliseconds timeout) override {
    v1::CallRequest request;
    request.set_account(account);
    request.set_method(method);
    if (params.is_object()) JsonToStruct(params, request.mutable_params());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    v1::CallResponse response;
    grpc::Status status = stub_->Call(&context, request, &response);
    if (!status.ok()) return FromStatus(status);
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

  Outcome<std::vector<AccountInfo>> ListAccounts() override {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ListAccountsResponse response;
    grpc::Status status = stub_->ListAccounts(&context, v1::ListAccountsRequest(), &response);
    if (!status.ok()) return FromStatus(status);
    std::vector<AccountInfo> accounts;
    for (const v1::Account& account : response.accounts()) {
      AccountInfo info{account.name(), account.username(), StateName(account.state()), {}, {}, account.last_error()};
      if (account.has_inactivity_deadline()) info.inactivity_deadline = ToTimePoint(account.inactivity_deadline());
      if (account.has_hard_deadline()) info.hard_deadline = ToTimePoint(account.hard_deadline());
      accounts.push_back(std::move(info));
    }
    return accounts;
  }

 private:
  std::unique_ptr<v1::Broker::Stub> stub_;
};

}  // namespace

std::unique_ptr<Client> Client::Connect(const std::string& socket_path) {
  return std::make_unique<GrpcClient>(socket_path);
}

}  // namespace stormbroker
