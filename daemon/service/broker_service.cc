#include "service/broker_service.h"

#include <google/protobuf/util/time_util.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "access/request_check.h"
#include "struct_json.h"

namespace stormbroker {
namespace {

// Largest serialized request accepted; API params are small.
constexpr size_t kMaxRequestBytes = 1 << 20;

grpc::Status ToGrpc(const Status& status) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (status.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kPermissionDenied: code = grpc::StatusCode::PERMISSION_DENIED; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case StatusCode::kUnauthenticated: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case StatusCode::kDeadlineExceeded: code = grpc::StatusCode::DEADLINE_EXCEEDED; break;
    case StatusCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
  }
  return grpc::Status(code, status.message());
}

std::string Describe(const Caller& caller) {
  return "uid " + std::to_string(caller.uid) + " (" + caller.user + ") pid " + std::to_string(caller.pid);
}

v1::AccountState ToProto(AccountState state) {
  switch (state) {
    case AccountState::kStarting: return v1::ACCOUNT_STATE_STARTING;
    case AccountState::kActive: return v1::ACCOUNT_STATE_ACTIVE;
    case AccountState::kRefreshing: return v1::ACCOUNT_STATE_REFRESHING;
    case AccountState::kUnreachable: return v1::ACCOUNT_STATE_UNREACHABLE;
    case AccountState::kLoginFailed: return v1::ACCOUNT_STATE_LOGIN_FAILED;
  }
  return v1::ACCOUNT_STATE_UNSPECIFIED;
}

google::protobuf::Timestamp ToTimestamp(std::chrono::system_clock::time_point t) {
  return google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

}  // namespace

grpc::ServerUnaryReactor* BrokerService::Call(grpc::CallbackServerContext* context,
                                              const v1::CallRequest* request, v1::CallResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto refuse = [&](const Status& status) {
    reactor->Finish(ToGrpc(status));
    return reactor;
  };

  std::optional<Caller> caller = peers_.Lookup(context->peer());
  if (!caller) return refuse({StatusCode::kUnauthenticated, "the broker cannot identify this connection"});
  if (request->ByteSizeLong() > kMaxRequestBytes) {
    return refuse(InvalidArgument("request is larger than 1 MiB"));
  }
  if (Status shape = CheckMethodPath(request->method()); !shape.ok()) return refuse(shape);

  std::string account = request->account();
  if (account.empty()) {
    if (accounts_.size() != 1) {
      std::string names;
      for (const auto& [name, session] : accounts_) names += (names.empty() ? "" : ", ") + name;
      return refuse(InvalidArgument("name the account (this broker holds " + names + ")"));
    }
    account = accounts_.begin()->first;
  }
  auto session = accounts_.find(account);
  if (session == accounts_.end()) return refuse(NotFound("no account named '" + account + "'"));

  if (policy_.Admits(*caller, account, request->method()) == 0) {
    spdlog::warn("denied: {} may not call {} on account {}", Describe(*caller), request->method(), account);
    return refuse(PermissionDenied("uid " + std::to_string(caller->uid) + " (" + caller->user +
                                   ") may not call " + request->method() + " on account " + account +
                                   "; an administrator can add a policy rule"));
  }

  response->set_account(account);
  auto started = std::chrono::steady_clock::now();
  session->second->Call(
      request->method(), StructToJson(request->params()),
      [reactor, response, method = request->method(), account, who = Describe(*caller),
       started](Result<ApiOutcome> outcome) {
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
        if (!outcome.ok()) {
          spdlog::warn("call {} on {} by {}: {} ({:.1f} ms)", method, account, who, outcome.status().message(), ms);
          reactor->Finish(ToGrpc(outcome.status()));
          return;
        }
        if (outcome->is_error) {
          const ApiError& error = outcome->error;
          spdlog::info("call {} on {} by {}: API error {} ({:.1f} ms)", method, account, who, error.error_class, ms);
          v1::ApiError* out = response->mutable_error();
          out->set_error_class(error.error_class);
          out->set_message(error.message);
          JsonToStruct(error.extra, out->mutable_extra());
          out->set_http_status(static_cast<int>(error.http_status));
        } else {
          spdlog::debug("call {} on {} by {}: ok ({:.1f} ms)", method, account, who, ms);
          JsonToValue(outcome->result, response->mutable_result());
        }
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::ListAccounts(grpc::CallbackServerContext* context,
                                                      const v1::ListAccountsRequest*,
                                                      v1::ListAccountsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::optional<Caller> caller = peers_.Lookup(context->peer());
  if (!caller) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "the broker cannot identify this connection"));
    return reactor;
  }
  for (const auto& [name, session] : accounts_) {
    if (!policy_.AdmitsAccount(*caller, name)) continue;
    AccountSnapshot snapshot = session->Snapshot();
    v1::Account* account = response->add_accounts();
    account->set_name(snapshot.name);
    account->set_username(snapshot.username);
    account->set_state(ToProto(snapshot.state));
    if (snapshot.inactivity_deadline) {
      *account->mutable_inactivity_deadline() = ToTimestamp(*snapshot.inactivity_deadline);
    }
    if (snapshot.hard_deadline) *account->mutable_hard_deadline() = ToTimestamp(*snapshot.hard_deadline);
    account->set_last_error(snapshot.last_error);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace stormbroker
