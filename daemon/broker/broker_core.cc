#include "broker/broker_core.h"

#include "access/browser_check.h"
#include "access/request_check.h"
#include "config/byte_size.h"
#include "encoding/document_bounds.h"

namespace stormbroker {
namespace {

// How a request ended, as the calls_total metric names it.
CallOutcome OutcomeOf(const AuditRecord& record, const Status& status) {
  if (record.outcome == Ending::kApiError) return CallOutcome::kApiError;
  switch (status.code()) {
    case StatusCode::kOk: return CallOutcome::kOk;
    case StatusCode::kPermissionDenied: return CallOutcome::kDenied;
    case StatusCode::kInvalidArgument:
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

const char* DoorName(Door door) {
  switch (door) {
    case Door::kGrpc: return "grpc";
    case Door::kHttpUnix: return "http-unix";
    case Door::kHttpTcp: return "http-tcp";
    case Door::kHttpsProxy: return "https-proxy";
    case Door::kMetrics: return "metrics";
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
      cache_(cache) {}

Status BrokerCore::AdmitConnection(int fd, const Caller& caller, Door door) {
  // The metrics door's table is small (its server's, for one scraper or
  // two): a uid's share of it is too, so that nobody can keep the scraper out.
  std::optional<size_t> share = door == Door::kMetrics ? std::optional<size_t>(kMetricsConnectionsPerUid) : std::nullopt;
  Status admitted = connections_.Admit(fd, caller, DoorName(door), share);
  if (!admitted.ok()) {
    AuditRecord record = StartAuditRecord(caller, DoorName(door), RpcName(Rpc::kConnect), "");
    record.decision = Decision::kLimit;
    Record(std::move(record), admitted);
  }
  return admitted;
}

void BrokerCore::RefuseUnidentified(Door door, const Status& why) {
  refusal_log_.Warn(kUnidentified, std::string(DoorName(door)) + ": refused a caller the kernel would not name: " +
                                       why.message());
  AuditRecord record = StartAuditRecord(Caller{}, DoorName(door), RpcName(Rpc::kConnect), "");
  record.decision = Decision::kUnidentified;
  Record(std::move(record), why);
}

void BrokerCore::ForgetConnection(int fd) { connections_.Forget(fd); }

std::optional<Caller> BrokerCore::CallerOf(int fd) const { return connections_.Lookup(fd); }

Result<Request> BrokerCore::Begin(int fd, Door door, Rpc rpc, bool drains) {
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
  return Request(std::move(admission.ticket), drains ? &in_flight_ : nullptr, std::move(record));
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

Result<Target> BrokerCore::Screen(Request& request, const std::string& account, const std::string& method) {
  AuditRecord& record = request.record();
  record.method = method;
  record.account = account;
  if (IsReservedMethod(method)) {
    refusal_log_.Warn(request.caller().uid, "denied: " + DescribeCaller(request.caller()) +
                                                " asked for the reserved method " + Printable(method));
    return Refuse(request, Decision::kDeny, ReservedMethodRefusal(method));
  }
  if (Status shape = CheckMethodPath(method); !shape.ok()) return Refuse(request, Decision::kInvalid, shape);
  return Authorize(request, account, Permission::kCall, method);
}

Status BrokerCore::CheckParams(Request& request, const nlohmann::json& params) {
  AuditRecord& record = request.record();
  record.param_names.clear();
  if (params.is_object()) {
    for (const auto& [name, value] : params.items()) record.param_names.push_back(name);  // sorted: a JSON object
  }
  if (Status shape = CheckBounds(params, kRequestBounds); !shape.ok()) {
    return Refuse(request, Decision::kInvalid, shape);
  }
  if (size_t size = params.dump().size(); size > max_params_bytes_) {
    return Refuse(request, Decision::kInvalid,
                  InvalidArgument("params are larger than limits.max_params_size (" +
                                  FormatByteSize(max_params_bytes_) + " as JSON; these are " +
                                  FormatByteSize(size) + ")"));
  }
  return Status::Ok();
}

void BrokerCore::Call(Request request, const Target& target, CallArgs args,
                      std::function<void(Result<ApiOutcome>)> done) {
  // Shared: std::function needs a copy, and the request is move-only.
  auto held = std::make_shared<Request>(std::move(request));
  auto finish = [this, held, done = std::move(done)](Result<ApiOutcome> outcome, CacheUse use) mutable {
    if (use != CacheUse::kNone) {
      held->record().cache = CacheUseName(use);
      if (metrics_) metrics_->CacheRequest(held->record().account, CacheUseName(use));
    }
    if (outcome.ok() && outcome->is_error) {
      // An API exception is an answer: the call succeeded, and the audit
      // says which exception it was.
      held->record().outcome = Ending::kApiError;
      held->record().error_class = outcome->error.error_class;
    }
    Conclude(*held, outcome.ok() ? Status::Ok() : outcome.status());
    held.reset();  // the caller may start its next call at once
    done(std::move(outcome));
  };
  auto gave_up = [gone = held->ticket()->gone(), cancelled = std::move(args.cancelled)] {
    return gone->load(std::memory_order_relaxed) || (cancelled && cancelled());
  };
  Lane lane;
  lane.uid = held->caller().uid;
  lane.share = target.share;
  auto ttl = cache_ ? cache_->Covers(target.account, args.method) : std::nullopt;
  if (!ttl) {
    // A possible write: once it completes, what the cache holds for the
    // account may be stale.
    lane.abandoned = std::move(gave_up);
    target.session->Call(
        args.method, args.params, args.deadline,
        [this, account = target.account, finish = std::move(finish)](Result<ApiOutcome> outcome) mutable {
          if (cache_) cache_->WriteDone(account);
          finish(std::move(outcome), CacheUse::kNone);
        },
        args.version, std::move(lane));
    return;
  }
  // A shared answer: each waiter is answered once, by the shared call or by
  // its own deadline, whichever comes first; one answered by its deadline
  // has left, so a call that everyone left is given up.
  auto waiter = std::make_shared<SharedWaiter>(std::move(finish));
  auto left = [waiter, gave_up = std::move(gave_up)] { return waiter->answered() || gave_up(); };
  std::string key = cache_->KeyOf(target.account, args.version, args.method, args.params);
  auto joined = cache_->Join(key, target.account, *ttl, args.fresh, [waiter](Result<ApiOutcome> outcome, CacheUse use) {
    waiter->Answer(std::move(outcome), use);
  }, left);
  if (joined.use == CacheUse::kHit) return waiter->Answer(std::move(*joined.stored), CacheUse::kHit);
  if (args.deadline && scheduler_) waiter->AnswerAt(*scheduler_, *args.deadline, joined.use);
  const auto& flight = joined.lead ? joined.lead : joined.joined;
  // The shared call is nobody's: no caller's deadline bounds it (one that
  // bypasses the cache is its caller's own). It waits in the lane of each
  // caller who joins it before it is sent, and leaves the line when the
  // first of them is served, or when everyone waiting for it has left.
  if (!flight || flight->StartedByOther(0)) return;
  auto deadline = joined.use == CacheUse::kBypass ? args.deadline : std::nullopt;
  AnswerCache::Flight::Entry entry = flight->NewEntry();
  lane.abandoned = [flight, entry] { return flight->Abandoned() || flight->StartedByOther(entry); };
  lane.starting = [flight, entry] { return flight->ClaimStart(entry); };
  target.session->Call(
      args.method, args.params, deadline,
      [this, flight, entry](Result<ApiOutcome> outcome) {
        if (flight->TakesOutcome(entry)) cache_->Complete(flight, std::move(outcome));
      },
      args.version, std::move(lane));
}

void BrokerCore::SharedWaiter::Answer(Result<ApiOutcome> outcome, CacheUse use) {
  if (answered_.exchange(true)) return;
  if (Scheduler* scheduler = scheduler_.load()) scheduler->Cancel(timer_.load());
  AnswerCache::Answer answer = std::move(answer_);  // only the first here touches it
  answer(std::move(outcome), use);
}

void BrokerCore::SharedWaiter::AnswerAt(Scheduler& scheduler, Scheduler::Clock::time_point deadline, CacheUse use) {
  std::weak_ptr<SharedWaiter> self = weak_from_this();
  timer_ = scheduler.RunAt(deadline, [self, use] {
    if (auto waiter = self.lock()) {
      waiter->Answer(Status(StatusCode::kDeadlineExceeded,
                            "the caller's deadline passed before the shared answer came; the call goes on for "
                            "the others waiting for it"),
                     use);
    }
  });
  scheduler_ = &scheduler;
  // Answered while the timer was being set: nobody else will cancel it.
  if (answered_.load()) scheduler.Cancel(timer_.load());
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

Status BrokerCore::Fault(Door door, Rpc rpc, Request* request, const std::optional<Caller>& caller,
                         std::string_view what) {
  Status failed = Internal("the broker failed while handling this request; the failure is in its log");
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

Result<Target> BrokerCore::AuthorizeLogin(Request& request, const std::string& account, std::string_view passcode) {
  auto target = Authorize(request, account, Permission::kAdmin);
  if (!target.ok()) return target;
  if (!passcode.empty()) {
    if (Status shape = CheckPasscode(passcode); !shape.ok()) return Refuse(request, Decision::kInvalid, shape);
  }
  return target;
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
  return browser.ok() ? browser : Refuse(request, Decision::kDeny, browser);
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

Status BrokerCore::ReserveBody(Request& request, size_t bytes) {
  uid_t uid = request.caller().uid;
  if (connections_.ReserveBodyBytes(uid, bytes)) return Status::Ok();
  return Refuse(request, Decision::kLimit,
                ResourceExhausted("uid " + std::to_string(uid) +
                                  " holds as many request bytes in the broker as it may (limits.body_bytes_per_uid)"));
}

void BrokerCore::ReleaseBody(const Request& request, size_t bytes) {
  if (bytes > 0) connections_.ReleaseBodyBytes(request.caller().uid, bytes);
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
