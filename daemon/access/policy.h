// Who may use which account for which methods. Rules only admit: a request is
// allowed when some rule admits its caller, account and method; no rule, no
// access.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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

 private:
  static bool MatchesPrincipal(const PolicyRule& rule, const Caller& caller);
  static bool MatchesAccount(const PolicyRule& rule, const std::string& account);

  std::vector<PolicyRule> rules_;
};

}  // namespace stormbroker
