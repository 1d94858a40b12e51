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
  account->set_fleet_role(snapshot.fleet_role);
  account->set_fleet_leader(snapshot.fleet_leader);
}

}  // namespace

class BrokerService::Admission {
 public:
  Admission(InFlight* drains, std::shared_ptr<const CallTicket> ticket)
      : drains_(drains), ticket_(std::move(ticket)) {}
  ~Admission() {
    if (drains_) drains_->End();
  }
  const Caller& caller() const { return ticket_->caller(); }

 private:
  InFlight* const drains_;  // counted for Drain, when set
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
  if (drains && !in_flight_.Begin()) {
    Conclude(reactor, *record, Unavailable("the broker is shutting down"));
    return nullptr;
  }
  return std::make_shared<Admission>(drains ? &in_flight_ : nullptr, std::move(admission.ticket));
}

grpc::ServerUnaryReactor* BrokerService::Conclude(grpc::ServerUnaryReactor* reactor, AuditRecord record,
                                                  const Status& status) {
  desk_.Conclude(std::move(record), status);
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::Call(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                                              v1::CallResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "Call", request->account(), /*drains=*/true, &record);
  if (!admitted) return reactor;
  if (request->params().ByteSizeLong() > kMaxParamsBytes) {
    record.method = request->method();
    return Conclude(reactor, std::move(record),
                    InvalidArgument("params are larger than " + FormatByteSize(kMaxParamsBytes)));
  }
  DeskCall call{request->account(), request->method(), "", StructToJson(request->params()), std::nullopt};
  // The caller's deadline bounds the upstream exchange too.
  if (context->deadline() < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    call.deadline = std::chrono::steady_clock::now() + (context->deadline() - std::chrono::system_clock::now());
  }
  const Caller& caller = admitted->caller();
  desk_.Call(caller, std::move(record), std::move(call),
             [reactor, response, admitted](Result<DeskAnswer> answer) mutable {
               admitted.reset();  // the call is over: its caller may start the next at once
               if (!answer.ok()) {
                 reactor->Finish(ToGrpc(answer.status()));
                 return;
               }
               response->set_account(answer->account);
               const ApiOutcome& outcome = answer->outcome;
               if (outcome.is_error) {
                 v1::ApiError* out = response->mutable_error();
                 out->set_error_class(outcome.error.error_class);
                 out->set_message(outcome.error.message);
                 JsonToStruct(outcome.error.extra, out->mutable_extra());
                 out->set_http_status(static_cast<int>(outcome.error.http_status));
               } else {
                 JsonToValue(outcome.result, response->mutable_result());
               }
               reactor->Finish(grpc::Status::OK);
             });
  return reactor;
}

bool BrokerService::Drain(std::chrono::milliseconds bound) { return in_flight_.Drain(bound); }

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
  auto found = desk_.FindAccount(account);
  if (!found.ok()) {
    record->decision = "invalid";
    return found.status();
  }
  record->account = found->first;
  if (!(policy_.Get().get()->*allowed)(caller, found->first)) {
    spdlog::warn("denied: {} may not {} on account {}", DescribeCaller(caller), rpc, found->first);
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
  if (!access.ok()) return Conclude(reactor, std::move(record), access.status());
  // Empty: a login with the password alone (accounts without prompt).
  if (!request->passcode().empty()) {
    if (Status shape = CheckPasscode(request->passcode()); !shape.ok()) {
      record.decision = "invalid";
      return Conclude(reactor, std::move(record), shape);
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
  if (!access.ok()) return Conclude(reactor, std::move(record), access.status());
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
  if (!access.ok()) return Conclude(reactor, std::move(record), access.status());
  const std::shared_ptr<AccountSession>& session = access->second;
  auto held = session->CurrentToken();
  if (!held.ok()) return Conclude(reactor, std::move(record), held.status());
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
  if (fleet_) {
    FleetStatus fleet = fleet_->Status();
    v1::FleetStatus* out = response->mutable_fleet();
    out->set_name(fleet.name);
    out->set_connected(fleet.connected);
    out->set_detail(fleet.detail);
    for (const auto& member : fleet.members) out->add_members(member);
  }
  auto policy = policy_.Get();
  for (const auto& [name, session] : accounts_) {
    if (policy->AdmitsAccount(admitted->caller(), name)) FillAccount(session->Snapshot(), response->add_accounts());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::GetMetrics(grpc::CallbackServerContext* context,
                                                    const v1::GetMetricsRequest*, v1::GetMetricsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  AuditRecord record;
  auto admitted = Admit(context, reactor, "GetMetrics", "", /*drains=*/false, &record);
  if (!admitted) return reactor;
  auto policy = policy_.Get();
  Exposition seen = metrics_.Collect(
      [&](const std::string& account) { return policy->AdmitsAccount(admitted->caller(), account); });
  response->set_text(seen.Text());
  for (const MetricFamily& family : seen.families()) {
    for (const Sample& sample : family.samples) {
      v1::MetricSample* out = response->add_samples();
      out->set_name(family.name + sample.suffix);
      for (const auto& [name, value] : sample.labels) (*out->mutable_labels())[name] = value;
      out->set_value(sample.value);
    }
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
