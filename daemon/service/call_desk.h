// What every door of the broker does with one API call for a local caller,
// whatever protocol carried it: the checks (a reserved method, the method's
// shape, the account, policy), the account session's call, and the call's
// audit record. The gRPC service and the HTTP door turn their protocol into
// a DeskCall and the answer back into it, so both refuse alike and audit
// alike; neither decides anything about a call on its own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "access/caller.h"
#include "access/policy.h"
#include "observe/audit_log.h"
#include "observe/metrics.h"
#include "tokens/account_session.h"

namespace stormbroker {

using AccountSessions = std::map<std::string, std::shared_ptr<AccountSession>>;

struct DeskCall {
  std::string account;  // empty: the only account, when the broker holds one
  std::string method;   // as the caller wrote it
  std::string version;  // the API version (empty: upstream.url's)
  nlohmann::json params = nlohmann::json::object();
  std::optional<Scheduler::Clock::time_point> deadline;
};

// The API's answer, and the account it went through.
struct DeskAnswer {
  std::string account;
  ApiOutcome outcome;
};

class CallDesk {
 public:
  // `metrics` may be null (nothing counted).
  CallDesk(const PolicyHolder& policy, const AccountSessions& accounts, AuditLog& audit, Metrics* metrics = nullptr)
      : policy_(policy), accounts_(accounts), audit_(audit), metrics_(metrics) {}

  using Found = std::pair<std::string, std::shared_ptr<AccountSession>>;
  // The named account (or the only one when `name` is empty): INVALID_ARGUMENT
  // for a malformed name or an ambiguous empty one, NOT_FOUND for none.
  Result<Found> FindAccount(const std::string& name) const;

  // Checks `call` for `caller` and hands it to the account's session. `done`
  // gets the API's answer, or why not: PERMISSION_DENIED (a reserved method,
  // or no policy rule), INVALID_ARGUMENT (the method's shape, the account's
  // name), NOT_FOUND (no such account), or the session's failure. `record`
  // (started by the door) is completed and audited before `done` runs.
  void Call(const Caller& caller, AuditRecord record, DeskCall call, std::function<void(Result<DeskAnswer>)> done);

  // Audits `record` with how it ended (`status`; an outcome already set,
  // such as api_error, stays), and counts it in the metrics.
  void Conclude(AuditRecord record, const Status& status);

 private:
  const PolicyHolder& policy_;
  const AccountSessions& accounts_;
  AuditLog& audit_;
  Metrics* metrics_;
};

// "uid 1000 (alice) pid 4242", for log lines about a caller.
std::string DescribeCaller(const Caller& caller);

}  // namespace stormbroker
