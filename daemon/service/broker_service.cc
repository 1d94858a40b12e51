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

google::protobuf::Timestamp ToTimestamp(std::chrono::system_clock::time_point t) {
  return google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

const char* TwoFactorName(TwoFactor mode) {
  switch (mode) {
    case TwoFactor::kNone: return "none";
    case TwoFactor::kPrompt: return "prompt";
    case TwoFactor::kTotp: return "totp";
  }
  return "none";
}

void FillAccount(const AccountSnapshot& snapshot, v1::Account* account) {
  account->set_name(snapshot.name);
  account->set_username(snapshot.username);
  account->set_state(ToProto(snapshot.state));
  if (snapshot.inactivity_deadline) *account->mutable_inactivity_deadline() = ToTimestamp(*snapshot.inactivity_deadline);
  if (snapshot.hard_deadline) *account->mutable_hard_deadline() = ToTimestamp(*snapshot.hard_deadline);
  if (snapshot.renew_at) *account->mutable_renew_at() = ToTimestamp(*snapshot.renew_at);
  account->set_last_error(snapshot.last_error);
  account->set_warning(snapshot.warning);
  account->set_two_factor(TwoFactorName(snapshot.two_factor));
}

const Status kUnidentified(StatusCode::kUnauthenticated, "the broker cannot identify this connection");

}  // namespace

Result<std::pair<std::string, std::shared_ptr<AccountSession>>> BrokerService::FindAccount(
    const std::string& name) const {
  if (name.empty()) {
    if (accounts_.size() != 1) {
      std::string names;
      for (const auto& [account, session] : accounts_) names += (names.empty() ? "" : ", ") + account;
      return InvalidArgument("name the account (this broker holds " + names + ")");
    }
    return std::pair<std::string, std::shared_ptr<AccountSession>>(*accounts_.begin());
  }
  auto found = accounts_.find(name);
  if (found == accounts_.end()) return NotFound("no account named '" + name + "'");
  return std::pair<std::string, std::shared_ptr<AccountSession>>(*found);
}

Result<std::pair<std::string, std::shared_ptr<AccountSession>>> BrokerService::AdminAccess(
    grpc::CallbackServerContext* context, const std::string& account, const char* action) const {
  std::optional<Caller> caller = peers_.Lookup(context->peer());
  if (!caller) return kUnidentified;
  auto found = FindAccount(account);
  if (!found.ok()) return found.status();
  if (!policy_.AdmitsAdmin(*caller, found->first)) {
    spdlog::warn("denied: {} may not {} account {}", Describe(*caller), action, found->first);
    return PermissionDenied("uid " + std::to_string(caller->uid) + " (" + caller->user + ") may not " + action +
                            " account " + found->first + "; that needs a policy rule with admin: true");
  }
  spdlog::info("{} by {} on account {}", action, Describe(*caller), found->first);
  return found;
}

grpc::ServerUnaryReactor* BrokerService::Call(grpc::CallbackServerContext* context,
                                              const v1::CallRequest* request, v1::CallResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto refuse = [&](const Status& status) {
    reactor->Finish(ToGrpc(status));
    return reactor;
  };

  std::optional<Caller> caller = peers_.Lookup(context->peer());
  if (!caller) return refuse(kUnidentified);
  if (request->ByteSizeLong() > kMaxRequestBytes) {
    return refuse(InvalidArgument("request is larger than 1 MiB"));
  }
  if (Status shape = CheckMethodPath(request->method()); !shape.ok()) return refuse(shape);

  auto found = FindAccount(request->account());
  if (!found.ok()) return refuse(found.status());
  const std::string& account = found->first;
  const std::shared_ptr<AccountSession>& session = found->second;

  if (policy_.Admits(*caller, account, request->method()) == 0) {
    spdlog::warn("denied: {} may not call {} on account {}", Describe(*caller), request->method(), account);
    return refuse(PermissionDenied("uid " + std::to_string(caller->uid) + " (" + caller->user +
                                   ") may not call " + request->method() + " on account " + account +
                                   "; an administrator can add a policy rule"));
  }

  response->set_account(account);
  auto started = std::chrono::steady_clock::now();
  session->Call(
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
    reactor->Finish(ToGrpc(kUnidentified));
    return reactor;
  }
  for (const auto& [name, session] : accounts_) {
    if (policy_.AdmitsAccount(*caller, name)) FillAccount(session->Snapshot(), response->add_accounts());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::Login(grpc::CallbackServerContext* context, const v1::LoginRequest* request,
                                               v1::LoginResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto access = AdminAccess(context, request->account(), "log in");
  if (!access.ok()) {
    reactor->Finish(ToGrpc(access.status()));
    return reactor;
  }
  std::shared_ptr<AccountSession> session = access->second;
  if (request->passcode().size() > 64) {
    reactor->Finish(ToGrpc(InvalidArgument("the passcode is longer than 64 characters")));
    return reactor;
  }
  session->Login(Secret(request->passcode()), [reactor, response, session](Status status) {
    if (status.ok()) FillAccount(session->Snapshot(), response->mutable_account());
    reactor->Finish(ToGrpc(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::Logout(grpc::CallbackServerContext* context,
                                                const v1::LogoutRequest* request, v1::LogoutResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto access = AdminAccess(context, request->account(), "log out");
  if (!access.ok()) {
    reactor->Finish(ToGrpc(access.status()));
    return reactor;
  }
  access->second->Logout([reactor](Status status) { reactor->Finish(ToGrpc(status)); });
  return reactor;
}

grpc::ServerWriteReactor<v1::AccountEvent>* BrokerService::WatchAccounts(grpc::CallbackServerContext* context,
                                                                         const v1::WatchAccountsRequest*) {
  std::optional<Caller> caller = peers_.Lookup(context->peer());
  if (!caller) {
    class Refusal : public grpc::ServerWriteReactor<v1::AccountEvent> {
     public:
      Refusal() { Finish(ToGrpc(kUnidentified)); }
      void OnDone() override { delete this; }
    };
    return new Refusal();
  }
  return watches_.Open(std::move(*caller));
}

}  // namespace stormbroker
