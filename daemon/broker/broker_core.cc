#include "broker/broker_core.h"

#include "access/browser_check.h"
#include "access/request_check.h"

namespace stormbroker {
namespace {

// How a request ended, as the calls_total metric names it.
CallOutcome OutcomeOf(const AuditRecord& record, const Status& status) {
  if (record.outcome == Ending::kApiError) return CallOutcome::kApiError;
  switch (status.code()) {
    case StatusCode::kOk: return CallOutcome::kOk;
    case StatusCode::kPermissionDenied: return CallOutcome::kDenied;
    case StatusCode::kInvalidArgument:
    case StatusCode::kTooLarge:
    case StatusCode::kNotFound:
    case StatusCode::kUnauthenticated: return CallOutcome::kInvalid;
    case StatusCode::kFailedPrecondition: return CallOutcome::kNeedsLogin;
    case StatusCode::kDeadlineExceeded: return CallOutcome::kDeadline;
    case StatusCode::kResourceExhausted: return CallOutcome::kLimited;
    case StatusCode::kUnavailable:
    case StatusCode::kInternal: break;
  }
  return CallOutcome::kUnavailable;
}

// The refusals_total metric's reason for a refused request (none when allowed).
const char* RefusalReason(const AuditRecord& record, const Status& status) {
  switch (record.decision) {
    case Decision::kAllow: return nullptr;
    case Decision::kDeny: return "policy";
    case Decision::kLimit: return "limit";
    case Decision::kUnidentified: return "unidentified";
    case Decision::kInvalid: return status.ok() ? nullptr : "invalid";
  }
  return nullptr;
}

}  // namespace

const char* DoorName(DoorKind door) {
  switch (door) {
    case DoorKind::kGrpc: return "grpc";
    case DoorKind::kHttpUnix: return "http-unix";
    case DoorKind::kHttpTcp: return "http-tcp";
    case DoorKind::kHttpsProxy: return "https-proxy";
    case DoorKind::kMetrics: return "metrics";
  }
  return "unknown";
}

const char* RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kConnect: return "connect";
    case Rpc::kCall: return "Call";
    case Rpc::kListAccounts: return "ListAccounts";
    case Rpc::kLogin: return "Login";
    case Rpc::kLogout: return "Logout";
    case Rpc::kGetToken: return "GetToken";
    case Rpc::kGetStatus: return "GetStatus";
    case Rpc::kGetMetrics: return "GetMetrics";
    case Rpc::kWatchAccounts: return "WatchAccounts";
    case Rpc::kHealth: return "Health";
  }
  return "unknown";
}

std::string DescribeCaller(const Caller& caller) {
  return "uid " + std::to_string(caller.uid) + " (" + caller.user + ") pid " + std::to_string(caller.pid);
}

BrokerCore::BrokerCore(ConnectionTable& connections, const PolicyHolder& policy, const AccountSessions& accounts,
                       AuditLog& audit, Metrics* metrics, const LimitsConfig& limits, AnswerCache* cache,
                       Scheduler* scheduler, std::vector<std::string> tunnel_hosts)
    : scheduler_(scheduler),
      tunnel_hosts_(std::move(tunnel_hosts)),
      connections_(connections),
      policy_(policy),
      accounts_(accounts),
      audit_(audit),
      metrics_(metrics),
      max_params_bytes_(limits.max_params_bytes),
      max_request_bytes_(limits.max_request_bytes),
      cache_(cache) {}

Status BrokerCore::AdmitConnection(int fd, const Caller& caller, DoorKind door) {
  // The metrics door's table is small (its server's, for one scraper or
  // two): a uid's share of it is too, so that nobody can keep the scraper out.
  std::optional<size_t> share = door == DoorKind::kMetrics ? std::optional<size_t>(kMetricsConnectionsPerUid) : std::nullopt;
  Status admitted = connections_.Admit(fd, caller, DoorName(door), share);
  if (!admitted.ok()) {
    AuditRecord record = StartAuditRecord(caller, DoorName(door), RpcName(Rpc::kConnect), "");
    record.decision = Decision::kLimit;
    Record(std::move(record), admitted);
  }
  return admitted;
}

void BrokerCore::RefuseUnidentified(DoorKind door, const Status& why) {
  refusal_log_.Warn(kUnidentified, std::string(DoorName(door)) + ": refused a caller the kernel would not name: " +
                                       why.message());
  AuditRecord record = StartAuditRecord(Caller{}, DoorName(door), RpcName(Rpc::kConnect), "");
  record.decision = Decision::kUnidentified;
  Record(std::move(record), why);
}

void BrokerCore::ForgetConnection(int fd) { connections_.Forget(fd); }

std::optional<Caller> BrokerCore::CallerOf(int fd) const { return connections_.Lookup(fd); }

Result<Request> BrokerCore::Begin(int fd, DoorKind door, Rpc rpc, bool drains) {
  CallAdmission admission = connections_.BeginCall(fd);
  if (!admission.caller) return admission.refusal;  // nobody to attribute it to: nothing to audit
  AuditRecord record = StartAuditRecord(*admission.caller, DoorName(door), RpcName(rpc), "");
  Status refusal = admission.ticket ? Status::Ok() : admission.refusal;
  if (refusal.ok() && drains && !in_flight_.Begin()) refusal = Unavailable("the broker is shutting down");
  if (!refusal.ok()) {
    record.decision = Decision::kLimit;
    Record(std::move(record), refusal);
    return refusal;
  }
  return Request(door, std::move(admission.ticket), drains ? &in_flight_ : nullptr, std::move(record));
}

Result<Target> BrokerCore::FindAccount(const std::string& name) const {
  if (Status shape = CheckAccountName(name); !shape.ok()) return shape;
  if (name.empty()) {
    if (accounts_.size() != 1) {
      std::string names;
      for (const auto& [account, session] : accounts_) names += (names.empty() ? "" : ", ") + account;
      return InvalidArgument("name the account (this broker holds " + names + ")");
    }
    return Target{accounts_.begin()->first, accounts_.begin()->second};
  }
  auto found = accounts_.find(name);
  if (found == accounts_.end()) return NotFound("no account named '" + name + "'");
  return Target{found->first, found->second};
}

Result<Target> BrokerCore::Authorize(Request& request, const std::string& account, Permission permission,
                                     const std::string& method) {
  AuditRecord& record = request.record();
  record.account = account;
  auto found = FindAccount(account);
  if (!found.ok()) return Refuse(request, Decision::kInvalid, found.status());
  record.account = found->account;
  const Caller& caller = request.caller();
  auto policy = policy_.Get();
  int rule_line = 0;  // known for method rules only
  bool allowed = false;
  std::string action, needs;
  switch (permission) {
    case Permission::kCall:
      rule_line = policy->Admits(caller, found->account, method);
      allowed = rule_line > 0;
      action = "call " + method + " on";
      break;
    case Permission::kUse:
      allowed = policy->AdmitsAccount(caller, found->account);
      action = "use";
      break;
    case Permission::kAdmin:
      allowed = policy->AdmitsAdmin(caller, found->account);
      action = record.rpc + " on";
      needs = " with admin: true";
      break;
    case Permission::kTokenExport:
      allowed = policy->AdmitsTokenExport(caller, found->account);
      action = "read the token of";
      needs = " with token_export: true";
      break;
  }
  if (!allowed) {
    std::string denial = "uid " + std::to_string(caller.uid) + " (" + caller.user + ") may not " + action +
                         " account " + found->account + "; an administrator can add a policy rule" + needs;
    refusal_log_.Warn(caller.uid, "denied: " + DescribeCaller(caller) + ": " + denial);
    return Refuse(request, Decision::kDeny, PermissionDenied(denial));
  }
  record.decision = Decision::kAllow;
  record.rule_line = rule_line;
  found->share = policy->ShareOf(caller, found->account);
  return found;
}

Status BrokerCore::Refuse(Request& request, Decision decision, Status why) {
  request.record().decision = decision;
  Conclude(request, why);
  return why;
}

void BrokerCore::Conclude(Request& request, const Status& status) {
  if (request.concluded()) return;
  request.set_concluded();
  Record(std::move(request.record()), status);
}

void BrokerCore::Record(AuditRecord record, const Status& status) {
  if (!status.ok()) record.outcome = Ending::kFailed;
  else if (record.outcome != Ending::kApiError) record.outcome = Ending::kOk;
  record.detail = status.message();
  record.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::system_clock::now() - record.time).count();
  if (metrics_) {
    if (const char* reason = RefusalReason(record, status)) metrics_->Refusal(record.listener, reason);
    if (record.rpc == RpcName(Rpc::kCall)) {
      // Only a configured account labels a series: a refused caller's may be anything.
      std::string account = accounts_.count(record.account) ? record.account : "";
      metrics_->Call(account, record.method, OutcomeOf(record, status), record.decision == Decision::kAllow,
                     std::chrono::duration<double, std::milli>(record.latency_ms));
    }
  }
  audit_.Record(std::move(record));
}

Status BrokerCore::Fault(DoorKind door, Rpc rpc, Request* request, const std::optional<Caller>& caller,
                         std::string_view what) {
  Status failed = BrokerFailed();
  const Caller* who = request ? &request->caller() : caller ? &*caller : nullptr;
  refusal_log_.Warn(who ? who->uid : kUnidentified,
                    std::string(DoorName(door)) + ": handling a request " +
                        (who ? "by " + DescribeCaller(*who) : std::string("from an unidentified caller")) +
                        " threw: " + Printable(what));
  if (request && !request->concluded()) {
    Conclude(*request, failed);
  } else if (!request) {
    Record(StartAuditRecord(who ? *who : Caller{}, DoorName(door), RpcName(rpc), ""), failed);
  }
  return failed;
}

Status BrokerCore::BrokerFailed() {
  return Internal("the broker failed while handling this request; the failure is in its log");
}

void BrokerCore::Login(Request request, const std::string& account, Secret passcode,
                       std::function<void(Result<AccountSnapshot>)> done) {
  auto target = Authorize(request, account, Permission::kAdmin);
  if (!target.ok()) return done(target.status());
  if (!passcode.empty()) {
    if (Status shape = CheckPasscode(passcode.Reveal()); !shape.ok()) {
      return done(Refuse(request, Decision::kInvalid, shape));
    }
  }
  auto held = std::make_shared<Request>(std::move(request));
  std::shared_ptr<AccountSession> session = target->session;
  session->Login(std::move(passcode), [this, held, session, done = std::move(done)](Status status) {
    Conclude(*held, status);
    if (!status.ok()) return done(status);
    done(session->Snapshot());
  });
}

void BrokerCore::Logout(Request request, const std::string& account, std::function<void(Status)> done) {
  auto target = Authorize(request, account, Permission::kAdmin);
  if (!target.ok()) return done(target.status());
  auto held = std::make_shared<Request>(std::move(request));
  target->session->Logout([this, held, done = std::move(done)](Status status) {
    Conclude(*held, status);
    done(status);
  });
}

Result<HeldToken> BrokerCore::ExportToken(Request request, const std::string& account) {
  auto target = Authorize(request, account, Permission::kTokenExport);
  if (!target.ok()) return target.status();
  Result<HeldToken> held = target->session->CurrentToken();
  Conclude(request, held.ok() ? Status::Ok() : held.status());
  return held;
}

std::vector<AccountSnapshot> BrokerCore::AccountsSeenBy(const Request& request) const {
  std::vector<AccountSnapshot> seen;
  for (const auto& [name, session] : accounts_) {
    if (MayUse(request.caller(), name)) seen.push_back(session->Snapshot());
  }
  return seen;
}

std::vector<HttpEngine::CallerLoad> BrokerCore::LoadSeenBy(const Request& request,
                                                           std::vector<HttpEngine::CallerLoad> loads) const {
  // Another uid's use of an account is its administrators' business.
  const Caller& caller = request.caller();
  std::erase_if(loads, [&](const HttpEngine::CallerLoad& load) {
    return load.uid != caller.uid && !MayAdminister(caller, load.account);
  });
  return loads;
}

Status BrokerCore::AdmitFromLoopbackTcp(Request& request, std::string_view host, std::string_view origin,
                                        std::string_view sec_fetch_site, const std::vector<std::string>& door_hosts) {
  Status browser = CheckBrowserHeaders(host, origin, sec_fetch_site, door_hosts);
  if (!browser.ok()) return Refuse(request, Decision::kDeny, browser);
  request.browser_checked_ = true;
  return browser;
}

Status BrokerCore::AdmitTunnel(Request& request, const std::string& host, int port) {
  request.record().method = "CONNECT " + Printable(host, 255) + ":" + std::to_string(port);
  if (port == 443 && std::find(tunnel_hosts_.begin(), tunnel_hosts_.end(), host) != tunnel_hosts_.end()) {
    return Status::Ok();
  }
  std::string served;
  for (const std::string& each : tunnel_hosts_) served += (served.empty() ? "" : ", ") + each + ":443";
  return Refuse(request, Decision::kDeny,
                PermissionDenied("this proxy serves the Storm API only (" + served + "); it connects nowhere else"));
}

Exposition BrokerCore::MetricsSeenBy(const Request& request) const {
  if (!metrics_) return {};
  const Caller& caller = request.caller();
  return metrics_->Collect([&](const std::string& account) { return MayUse(caller, account); });
}

Result<std::string> BrokerCore::MetricsForReader(Request& request) {
  const Caller& caller = request.caller();
  if (!policy_.Get()->AdmitsMetrics(caller)) {
    return Refuse(request, Decision::kDeny,
                  PermissionDenied("uid " + std::to_string(caller.uid) + " (" + caller.user +
                                   ") may not read the metrics; an administrator can add a policy rule with "
                                   "metrics: true"));
  }
  return metrics_ ? metrics_->Collect().Text() : std::string();
}

bool BrokerCore::MayUse(const Caller& caller, const std::string& account) const {
  return policy_.Get()->AdmitsAccount(caller, account);
}

bool BrokerCore::MayAdminister(const Caller& caller, const std::string& account) const {
  return policy_.Get()->AdmitsAdmin(caller, account);
}

}  // namespace stormbroker
