// Who may use which account for which methods. Rules only grant: a request
// is allowed when some rule admits its caller, account and method, so the
// order of rules never matters (first match and most specific match would
// decide alike); no rule, no access.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <absl/synchronization/mutex.h>

#include "access/caller.h"
#include "config/config.h"

namespace stormbroker {

// '*' matches any run of characters (slashes included); the rest matches
// case-insensitively, as the API treats method paths.
bool MethodPatternMatches(std::string_view pattern, std::string_view method);

class Policy {
 public:
  explicit Policy(std::vector<PolicyRule> rules) : rules_(std::move(rules)) {}

  // The line of the first rule that admits the request, or 0 when none does.
  int Admits(const Caller& caller, const std::string& account, const std::string& method) const;
  // Whether some rule admits the caller to the account for any method.
  bool AdmitsAccount(const Caller& caller, const std::string& account) const;
  // Whether some rule with admin: true admits the caller to the account.
  bool AdmitsAdmin(const Caller& caller, const std::string& account) const;
  // Whether some rule with token_export: true admits the caller to the account.
  bool AdmitsTokenExport(const Caller& caller, const std::string& account) const;
  // Whether some rule with metrics: true names the caller (metrics.listen
  // answers only them: the metrics name every account and method in use).
  bool AdmitsMetrics(const Caller& caller) const;
  // The caller's weight in the line for the API when it uses the account:
  // the largest share of the rules that name it for the account (1 when
  // none sets one).
  uint32_t ShareOf(const Caller& caller, const std::string& account) const;

 private:
  static bool MatchesPrincipal(const PolicyRule& rule, const Caller& caller);
  static bool MatchesAccount(const PolicyRule& rule, const std::string& account);

  std::vector<PolicyRule> rules_;
};

// The policy in force, replaced as a whole on reload (SIGHUP) while calls
// keep using the one they started with.
class PolicyHolder {
 public:
  explicit PolicyHolder(std::shared_ptr<const Policy> policy) : policy_(std::move(policy)) {}
  std::shared_ptr<const Policy> Get() const {
    absl::MutexLock lock(&mutex_);
    return policy_;
  }
  void Set(std::shared_ptr<const Policy> policy) {
    absl::MutexLock lock(&mutex_);
    policy_ = std::move(policy);
  }

 private:
  mutable absl::Mutex mutex_;
  std::shared_ptr<const Policy> policy_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace stormbroker
