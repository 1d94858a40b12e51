#include "doors/grpc/broker_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

#include "access/request_check.h"
#include "broker/call_exchange.h"
#include "doors/grpc/grpc_peer.h"
#include "struct_json.h"

namespace stormbroker {

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
    case StatusCode::kResourceExhausted:
    // gRPC's own code for a message over its limit.
    case StatusCode::kTooLarge: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case StatusCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
  }
  return grpc::Status(code, status.message());
}

namespace {

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

std::optional<Request> BrokerService::Begin(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                                            Rpc rpc, bool drains) {
  std::optional<int> fd = ConnectionFdOf(context->peer());
  Result<Request> request =
      fd ? core_.Begin(*fd, DoorKind::kGrpc, rpc, drains)
         : Result<Request>(Status(StatusCode::kUnauthenticated, "the broker cannot identify this connection"));
  if (!request.ok()) {
    reactor->Finish(ToGrpc(request.status()));
    return std::nullopt;
  }
  return std::move(request).value();
}

grpc::ServerUnaryReactor* BrokerService::Faulted(grpc::CallbackServerContext* context,
                                                 grpc::ServerUnaryReactor* reactor, Rpc rpc, std::string_view what) {
  std::optional<int> fd = ConnectionFdOf(context->peer());
  Status failed = core_.Fault(DoorKind::kGrpc, rpc, nullptr, fd ? core_.CallerOf(*fd) : std::nullopt, what);
  reactor->Finish(ToGrpc(failed));
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::Call(grpc::CallbackServerContext* context, const v1::CallRequest* request,
                                              v1::CallResponse* response) {
  return Guard(context, Rpc::kCall, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kCall, /*drains=*/true);
    if (!admitted) return reactor;
    CallHead head{request->account(), request->method()};
    // The caller's deadline bounds the upstream exchange too.
    if (context->deadline() < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
      head.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(context->deadline() -
                                                                           std::chrono::system_clock::now());
    }
    for (auto [name, value] : context->client_metadata()) {
      if (name == "cache-control") head.fresh = head.fresh || AsksForFresh(std::string_view(value.data(), value.size()));
    }
    head.cancelled = [context] { return context->IsCancelled(); };
    auto call = core_.OpenCall(std::move(*admitted), std::move(head));
    if (!call.ok()) {
      reactor->Finish(ToGrpc(call.status()));
      return reactor;
    }
    std::string account = call->request().record().account;
    std::move(*call).End(StructToJson(request->params()),
               [context, reactor, response, account](Result<ApiOutcome> answer) {
                 if (!answer.ok()) {
                   // gRPC's own name for "retry after": its retry policy honours it.
                   if (auto after = answer.status().retry_after()) {
                     context->AddTrailingMetadata("grpc-retry-pushback-ms", std::to_string(after->count()));
                   }
                   reactor->Finish(ToGrpc(answer.status()));
                   return;
                 }
                 response->set_account(account);
                 const ApiOutcome& outcome = *answer;
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
  });
}

grpc::ServerUnaryReactor* BrokerService::ListAccounts(grpc::CallbackServerContext* context,
                                                      const v1::ListAccountsRequest*,
                                                      v1::ListAccountsResponse* response) {
  return Guard(context, Rpc::kListAccounts, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kListAccounts, /*drains=*/false);
    if (!admitted) return reactor;
    for (const AccountSnapshot& seen : core_.AccountsSeenBy(*admitted)) FillAccount(seen, response->add_accounts());
    AddUpstreamState(response->mutable_accounts());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  });
}

grpc::ServerUnaryReactor* BrokerService::Login(grpc::CallbackServerContext* context, const v1::LoginRequest* request,
                                               v1::LoginResponse* response) {
  return Guard(context, Rpc::kLogin, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kLogin, /*drains=*/true);
    if (!admitted) return reactor;
    core_.Login(std::move(*admitted), request->account(), Secret(request->passcode()),
                [reactor, response](Result<AccountSnapshot> account) {
                  if (account.ok()) FillAccount(*account, response->mutable_account());
                  reactor->Finish(ToGrpc(account.status()));
                });
    return reactor;
  });
}

grpc::ServerUnaryReactor* BrokerService::Logout(grpc::CallbackServerContext* context,
                                                const v1::LogoutRequest* request, v1::LogoutResponse*) {
  return Guard(context, Rpc::kLogout, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kLogout, /*drains=*/true);
    if (!admitted) return reactor;
    core_.Logout(std::move(*admitted), request->account(),
                 [reactor](Status status) { reactor->Finish(ToGrpc(status)); });
    return reactor;
  });
}

grpc::ServerUnaryReactor* BrokerService::GetToken(grpc::CallbackServerContext* context,
                                                  const v1::GetTokenRequest* request, v1::GetTokenResponse* response) {
  return Guard(context, Rpc::kGetToken, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kGetToken, /*drains=*/true);
    if (!admitted) return reactor;
    auto held = core_.ExportToken(std::move(*admitted), request->account());
    if (!held.ok()) {
      reactor->Finish(ToGrpc(held.status()));
      return reactor;
    }
    const AccountSnapshot& snapshot = held->snapshot;
    response->set_token(std::string(held->token.Reveal()));
    response->set_username(snapshot.username);
    if (snapshot.inactivity_deadline) *response->mutable_inactivity_deadline() = ToTimestamp(*snapshot.inactivity_deadline);
    if (snapshot.hard_deadline) *response->mutable_hard_deadline() = ToTimestamp(*snapshot.hard_deadline);
    if (snapshot.renew_at) *response->mutable_renew_at() = ToTimestamp(*snapshot.renew_at);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  });
}

grpc::ServerUnaryReactor* BrokerService::GetStatus(grpc::CallbackServerContext* context, const v1::GetStatusRequest*,
                                                   v1::GetStatusResponse* response) {
  return Guard(context, Rpc::kGetStatus, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kGetStatus, /*drains=*/false);
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
    if (auto proxy = describe_proxy_ ? describe_proxy_() : std::nullopt) {
      v1::HttpsProxyStatus* out = response->mutable_https_proxy();
      out->set_address(proxy->address);
      for (const auto& host : proxy->hosts) out->add_hosts(host);
      out->set_ca_certificate(proxy->ca_certificate);
    }
    for (const AccountSnapshot& seen : core_.AccountsSeenBy(*admitted)) FillAccount(seen, response->add_accounts());
    AddUpstreamState(response->mutable_accounts());
    for (const HttpEngine::CallerLoad& load : core_.LoadSeenBy(*admitted, engine_.Callers())) {
      v1::CallerLoad* out = response->add_callers();
      out->set_account(load.account);
      out->set_uid(load.uid);
      out->set_at_api(static_cast<uint32_t>(load.at_api));
      out->set_waiting(static_cast<uint32_t>(load.waiting));
      out->set_longest_wait_ms(static_cast<uint64_t>(load.longest.count()));
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  });
}

void BrokerService::AddUpstreamState(google::protobuf::RepeatedPtrField<v1::Account>* accounts) const {
  for (v1::Account& account : *accounts) {
    HttpEngine::AccountLoad load = engine_.CurrentLoad(account.name());
    if (load.paused_until) *account.mutable_paused_until() = ToTimestamp(*load.paused_until);
    account.set_upstream_protocol(load.protocol);
  }
}

grpc::ServerUnaryReactor* BrokerService::GetMetrics(grpc::CallbackServerContext* context,
                                                    const v1::GetMetricsRequest*, v1::GetMetricsResponse* response) {
  return Guard(context, Rpc::kGetMetrics, [&](grpc::ServerUnaryReactor* reactor) {
    auto admitted = Begin(context, reactor, Rpc::kGetMetrics, /*drains=*/false);
    if (!admitted) return reactor;
    Exposition seen = core_.MetricsSeenBy(*admitted);
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
  });
}

grpc::ServerWriteReactor<v1::AccountEvent>* BrokerService::WatchAccounts(grpc::CallbackServerContext* context,
                                                                         const v1::WatchAccountsRequest*) {
  std::optional<int> fd = ConnectionFdOf(context->peer());
  Result<Request> admitted = fd ? core_.Begin(*fd, DoorKind::kGrpc, Rpc::kWatchAccounts, /*drains=*/false)
                                : Result<Request>(Status(StatusCode::kUnauthenticated, "unknown connection"));
  if (!admitted.ok()) {
    class Refusal : public grpc::ServerWriteReactor<v1::AccountEvent> {
     public:
      explicit Refusal(const Status& status) { Finish(ToGrpc(status)); }
      void OnDone() override { delete this; }
    };
    return new Refusal(admitted.status());
  }
  // The stream holds its place among the caller's calls for as long as it is open.
  return watches_.Open(admitted->ticket());
}

}  // namespace stormbroker
