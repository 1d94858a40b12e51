#include "service/call_desk.h"

#include <spdlog/spdlog.h>

#include "access/request_check.h"

namespace stormbroker {

std::string DescribeCaller(const Caller& caller) {
  return "uid " + std::to_string(caller.uid) + " (" + caller.user + ") pid " + std::to_string(caller.pid);
}

Result<CallDesk::Found> CallDesk::FindAccount(const std::string& name) const {
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

namespace {

CallOutcome OutcomeOf(const AuditRecord& record, const Status& status) {
  if (record.outcome == "api_error") return CallOutcome::kApiError;
  if (record.decision == "limit") return CallOutcome::kLimited;
  switch (status.code()) {
    case StatusCode::kOk:
      return CallOutcome::kOk;
    case StatusCode::kPermissionDenied:
      return CallOutcome::kDenied;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
      return CallOutcome::kInvalid;
    case StatusCode::kFailedPrecondition:
      return CallOutcome::kNeedsLogin;
    case StatusCode::kDeadlineExceeded:
      return CallOutcome::kDeadline;
    case StatusCode::kResourceExhausted:
      return CallOutcome::kLimited;
    default:
      return CallOutcome::kUnavailable;
  }
}

// `account`: the record's account if the broker holds it, else empty (the
// record's may be whatever a refused caller wrote).
void Count(Metrics& metrics, const AuditRecord& record, const std::string& account, const Status& status) {
  if (record.decision == "deny") metrics.Refusal("policy");
  else if (record.decision == "invalid") metrics.Refusal("invalid");
  else if (record.decision == "limit") metrics.Refusal("limit");
  if (record.rpc != "Call") return;
  metrics.Call(account, record.method, OutcomeOf(record, status), record.decision == "allow",
               std::chrono::duration<double, std::milli>(record.latency_ms));
}

}  // namespace

void CallDesk::Conclude(AuditRecord record, const Status& status) {
  if (record.outcome.empty()) record.outcome = status.ok() ? "ok" : "failed";
  if (record.decision.empty()) record.decision = "invalid";
  record.detail = status.message();
  record.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::system_clock::now() - record.time).count();
  if (metrics_) Count(*metrics_, record, accounts_.count(record.account) ? record.account : "", status);
  audit_.Record(std::move(record));
}

void CallDesk::Call(const Caller& caller, AuditRecord record, DeskCall call,
                    std::function<void(Result<DeskAnswer>)> done) {
  auto refuse = [&](const char* decision, Status status) {
    if (decision) record.decision = decision;
    Conclude(std::move(record), status);
    done(std::move(status));
  };
  record.method = call.method;
  for (const auto& [name, value] : call.params.items()) record.param_names.push_back(name);  // sorted: a JSON object
  if (IsReservedMethod(call.method)) {
    spdlog::warn("denied: {} asked for the reserved method {}", DescribeCaller(caller), record.method.substr(0, 200));
    return refuse("deny", ReservedMethodRefusal(call.method));
  }
  if (Status shape = CheckMethodPath(call.method); !shape.ok()) return refuse(nullptr, shape);
  auto found = FindAccount(call.account);
  if (!found.ok()) return refuse(nullptr, found.status());
  // Named, not a structured binding: clang 14 cannot capture one.
  std::string account = found->first;
  std::shared_ptr<AccountSession> session = found->second;
  record.account = account;
  int rule = policy_.Get()->Admits(caller, account, call.method);
  if (rule == 0) {
    spdlog::warn("denied: {} may not call {} on account {}", DescribeCaller(caller), call.method, account);
    return refuse("deny", PermissionDenied("uid " + std::to_string(caller.uid) + " (" + caller.user +
                                           ") may not call " + call.method + " on account " + account +
                                           "; an administrator can add a policy rule"));
  }
  record.decision = "allow";
  record.rule_line = rule;
  session->Call(
      call.method, call.params, call.deadline,
      [this, account, record = std::move(record), done = std::move(done)](Result<ApiOutcome> outcome) mutable {
        if (!outcome.ok()) {
          Conclude(std::move(record), outcome.status());
          done(outcome.status());
          return;
        }
        // An API exception is an answer: the call succeeded, and the audit
        // says which exception it was.
        if (outcome->is_error) {
          record.outcome = "api_error";
          record.error_class = outcome->error.error_class;
        }
        Conclude(std::move(record), Status::Ok());
        done(DeskAnswer{account, std::move(outcome).value()});
      },
      call.version);
}

}  // namespace stormbroker
