#include "service/broker_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

#include "access/request_check.h"
#include "config/byte_size.h"
#include "struct_json.h"

namespace stormbroker {
namespace {

// Largest params accepted: API params are small. (A whole request larger
// than limits.max_request_size never reaches a handler: gRPC refuses it.)
constexpr size_t kMaxParamsBytes = 64 << 10;

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
    case StatusCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
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

double MillisecondsSince(std::chrono::system_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now() - start).count();
}

}  // namespace

class BrokerService::Admission {
 public:
  Admission(BrokerService* drains, std::shared_ptr<const CallTicket> ticket)
      : drains_(drains), ticket_(std::move(ticket)) {}
  ~Admission() {
    if (drains_) drains_->EndCall();
  }
  const Caller& caller() const { return ticket_->caller(); }

 private:
  BrokerService* const drains_;  // counted for Drain, when set
  const std::shared_ptr<const CallTicket> ticket_;
};

std::shared_ptr<BrokerService::Admission> BrokerService::Admit(grpc::CallbackServerContext* context,
                                                               grpc::ServerUnaryReactor* reactor, const char* rpc,
                                                               const std::string& account, bool drains,
                                                               AuditRecord* record) {
  CallAdmission admission = connections_.BeginCall(context->peer());
  if (!admission.caller) {  // nobody to attribute it to: nothing to audit
    reactor->Finish(ToGrpc(admission.refusal));
    return nullptr;
  }
  *record = StartAuditRecord(*admission.caller, "grpc", rpc, account);
  if (!admission.ticket) {
    record->decision = "limit";
    Conclude(reactor, *record, admission.refusal);
    return nullptr;
  }
  if (drains && !BeginCall()) {
    Refuse(reactor, *record, Unavailable("the broker is shutting down"));
    return nullptr;
  }
  return std::make_shared<Admission>(drains ? this : nullptr, std::move(admission.ticket));
}

Result<BrokerService::Found> BrokerService::FindAccount(const std::string& name) const {
  if (Status shape = CheckAccountName(name); !shape.ok()) return shape;
  if (name.empty()) {
    if (accounts_.size() != 1) {
      std::string names;
      for (const auto& [account, session] : accounts_) names += (names.empty() ? "" : ", ") + account;
      return InvalidArgument("name the account (this broker holds " + names + ")");
    }
    return Found(*accounts_.begin());
  }
  auto found = accounts_.find(name);
  if (found == accounts_.end()) return NotFound("no account named '" + name + "'");
  return Found(*found);
}

grpc::ServerUnaryReactor* BrokerService::Conclude(grpc::ServerUnaryReactor* reactor, AuditRecord record,
                                                  const Status& status) {
  if (record.outcome.empty()) record.outcome = status.ok() ? "ok" : "failed";
  record.detail = status.message();
  record.latency_ms = MillisecondsSince(record.time);
  audit_.Record(std::move(record));
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::Refuse(grpc::ServerUnaryReactor* reactor, AuditRecord record,
                                                const Status& status) {
  if (record.decision.empty()) record.decision = "invalid";
  return Conclude(reactor, std::move(record), status);
}

grpc::ServerUnaryReactor* BrokerService::Call(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                                              v1::CallResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "Call", request->account(), /*drains=*/true, &record);
  if (!admitted) return reactor;
  const Caller& caller = admitted->caller();
  record.method = request->method();
  if (request->params().ByteSizeLong() > kMaxParamsBytes) {
    return Refuse(reactor, std::move(record),
                  InvalidArgument("params are larger than " + FormatByteSize(kMaxParamsBytes)));
  }
  for (const auto& [name, value] : request->params().fields()) record.param_names.push_back(name);
  std::sort(record.param_names.begin(), record.param_names.end());  // map order is unspecified
  if (IsReservedMethod(request->method())) {
    spdlog::warn("denied: {} asked for the reserved method {}", Describe(caller), record.method.substr(0, 200));
    record.decision = "deny";
    return Refuse(reactor, std::move(record), ReservedMethodRefusal(request->method()));
  }
  if (Status shape = CheckMethodPath(request->method()); !shape.ok()) return Refuse(reactor, std::move(record), shape);
  auto found = FindAccount(request->account());
  if (!found.ok()) return Refuse(reactor, std::move(record), found.status());
  auto [account, session] = std::move(found).value();
  record.account = account;

  int rule = policy_.Get()->Admits(caller, account, request->method());
  if (rule == 0) {
    spdlog::warn("denied: {} may not call {} on account {}", Describe(caller), request->method(), account);
    record.decision = "deny";
    return Refuse(reactor, std::move(record),
                  PermissionDenied("uid " + std::to_string(caller.uid) + " (" + caller.user + ") may not call " +
                                   request->method() + " on account " + account +
                                   "; an administrator can add a policy rule"));
  }
  record.decision = "allow";
  record.rule_line = rule;

  response->set_account(account);
  // The caller's deadline bounds the upstream exchange too.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (context->deadline() < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    deadline = std::chrono::steady_clock::now() + (context->deadline() - std::chrono::system_clock::now());
  }
  session->Call(request->method(), StructToJson(request->params()), deadline,
                [this, reactor, response, admitted, record = std::move(record)](Result<ApiOutcome> outcome) mutable {
                  admitted.reset();  // the call is over: its caller may start the next at once
                  if (!outcome.ok()) {
                    Conclude(reactor, std::move(record), outcome.status());
                    return;
                  }
                  // An API exception is an answer: the call succeeded, and the
                  // audit says which exception it was.
                  if (outcome->is_error) {
                    const ApiError& error = outcome->error;
                    record.outcome = "api_error";
                    record.error_class = error.error_class;
                    v1::ApiError* out = response->mutable_error();
                    out->set_error_class(error.error_class);
                    out->set_message(error.message);
                    JsonToStruct(error.extra, out->mutable_extra());
                    out->set_http_status(static_cast<int>(error.http_status));
                  } else {
                    JsonToValue(outcome->result, response->mutable_result());
                  }
                  Conclude(reactor, std::move(record), Status::Ok());
                });
  return reactor;
}

bool BrokerService::BeginCall() {
  absl::MutexLock lock(&calls_mutex_);
  if (draining_) return false;
  ++calls_in_flight_;
  return true;
}

void BrokerService::EndCall() {
  absl::MutexLock lock(&calls_mutex_);
  --calls_in_flight_;
}

bool BrokerService::Drain(std::chrono::milliseconds bound) {
  absl::MutexLock lock(&calls_mutex_);
  draining_ = true;
  return calls_mutex_.AwaitWithTimeout(absl::Condition(+[](int* calls) { return *calls == 0; }, &calls_in_flight_),
                                       absl::FromChrono(bound));
}

grpc::ServerUnaryReactor* BrokerService::ListAccounts(grpc::CallbackServerContext* context,
                                                      const v1::ListAccountsRequest*,
                                                      v1::ListAccountsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "ListAccounts", "", /*drains=*/false, &record);
  if (!admitted) return reactor;
  auto policy = policy_.Get();
  for (const auto& [name, session] : accounts_) {
    if (policy->AdmitsAccount(admitted->caller(), name)) FillAccount(session->Snapshot(), response->add_accounts());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

Result<BrokerService::Found> BrokerService::Authorize(const Caller& caller, const std::string& account,
                                                      const char* rpc,
                                                      bool (Policy::*allowed)(const Caller&, const std::string&) const,
                                                      const char* needs, AuditRecord* record) {
  auto found = FindAccount(account);
  if (!found.ok()) {
    record->decision = "invalid";
    return found.status();
  }
  record->account = found->first;
  if (!(policy_.Get().get()->*allowed)(caller, found->first)) {
    spdlog::warn("denied: {} may not {} on account {}", Describe(caller), rpc, found->first);
    record->decision = "deny";
    return PermissionDenied("uid " + std::to_string(caller.uid) + " (" + caller.user + ") may not " + rpc +
                            " on account " + found->first + "; that needs a policy rule with " + needs);
  }
  record->decision = "allow";
  return found;
}

grpc::ServerUnaryReactor* BrokerService::Login(grpc::CallbackServerContext* context, const v1::LoginRequest* request,
                                               v1::LoginResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "Login", request->account(), /*drains=*/true, &record);
  if (!admitted) return reactor;
  auto access = Authorize(admitted->caller(), request->account(), "Login", &Policy::AdmitsAdmin, "admin: true", &record);
  if (!access.ok()) return Refuse(reactor, std::move(record), access.status());
  // Empty: a login with the password alone (accounts without prompt).
  if (!request->passcode().empty()) {
    if (Status shape = CheckPasscode(request->passcode()); !shape.ok()) {
      record.decision = "invalid";
      return Refuse(reactor, std::move(record), shape);
    }
  }
  std::shared_ptr<AccountSession> session = access->second;
  session->Login(Secret(request->passcode()),
                 [this, reactor, response, session, admitted, record = std::move(record)](Status status) mutable {
                   admitted.reset();
                   if (status.ok()) FillAccount(session->Snapshot(), response->mutable_account());
                   Conclude(reactor, std::move(record), status);
                 });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::Logout(grpc::CallbackServerContext* context,
                                                const v1::LogoutRequest* request, v1::LogoutResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "Logout", request->account(), /*drains=*/true, &record);
  if (!admitted) return reactor;
  auto access = Authorize(admitted->caller(), request->account(), "Logout", &Policy::AdmitsAdmin, "admin: true", &record);
  if (!access.ok()) return Refuse(reactor, std::move(record), access.status());
  access->second->Logout([this, reactor, admitted, record = std::move(record)](Status status) mutable {
    admitted.reset();
    Conclude(reactor, std::move(record), status);
  });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::GetToken(grpc::CallbackServerContext* context,
                                                  const v1::GetTokenRequest* request, v1::GetTokenResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "GetToken", request->account(), /*drains=*/true, &record);
  if (!admitted) return reactor;
  auto access = Authorize(admitted->caller(), request->account(), "GetToken", &Policy::AdmitsTokenExport,
                          "token_export: true", &record);
  if (!access.ok()) return Refuse(reactor, std::move(record), access.status());
  const std::shared_ptr<AccountSession>& session = access->second;
  auto held = session->CurrentToken();
  if (!held.ok()) return Refuse(reactor, std::move(record), held.status());
  const AccountSnapshot& snapshot = held->snapshot;
  response->set_token(std::string(held->token.Reveal()));
  response->set_username(snapshot.username);
  if (snapshot.inactivity_deadline) *response->mutable_inactivity_deadline() = ToTimestamp(*snapshot.inactivity_deadline);
  if (snapshot.hard_deadline) *response->mutable_hard_deadline() = ToTimestamp(*snapshot.hard_deadline);
  if (snapshot.renew_at) *response->mutable_renew_at() = ToTimestamp(*snapshot.renew_at);
  return Conclude(reactor, std::move(record), Status::Ok());
}

grpc::ServerUnaryReactor* BrokerService::GetStatus(grpc::CallbackServerContext* context, const v1::GetStatusRequest*,
                                                   v1::GetStatusResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "GetStatus", "", /*drains=*/false, &record);
  if (!admitted) return reactor;
  response->set_version(STORMBROKER_VERSION);
  *response->mutable_started_at() = ToTimestamp(started_);
  response->set_audit_records_dropped(audit_.dropped());
  auto policy = policy_.Get();
  for (const auto& [name, session] : accounts_) {
    if (policy->AdmitsAccount(admitted->caller(), name)) FillAccount(session->Snapshot(), response->add_accounts());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::AccountEvent>* BrokerService::WatchAccounts(grpc::CallbackServerContext* context,
                                                                         const v1::WatchAccountsRequest*) {
  CallAdmission admission = connections_.BeginCall(context->peer());
  if (!admission.ticket) {
    class Refusal : public grpc::ServerWriteReactor<v1::AccountEvent> {
     public:
      explicit Refusal(const Status& status) { Finish(ToGrpc(status)); }
      void OnDone() override { delete this; }
    };
    return new Refusal(admission.refusal);
  }
  // The stream holds its place among the caller's calls for as long as it is open.
  return watches_.Open(std::move(admission.ticket));
}

}  // namespace stormbroker
