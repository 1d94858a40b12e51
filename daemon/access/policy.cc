#include "access/policy.h"

#include <algorithm>
#include <cctype>
#include <absl/strings/ascii.h>

namespace stormbroker {

bool MethodPatternMatches(std::string_view pattern, std::string_view method) {
  // Iterative glob with one backtrack point: linear enough for short paths.
  size_t p = 0, m = 0, star = std::string_view::npos, resume = 0;
  auto same = [](char a, char b) { return absl::ascii_tolower(a) == absl::ascii_tolower(b); };
  while (m < method.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = m;
    } else if (p < pattern.size() && same(pattern[p], method[m])) {
      ++p;
      ++m;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      m = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Policy::MatchesPrincipal(const PolicyRule& rule, const Caller& caller) {
  if (std::find(rule.uids.begin(), rule.uids.end(), caller.uid) != rule.uids.end()) return true;
  for (gid_t gid : rule.gids) {
    if (gid == caller.gid) return true;
    if (std::find(caller.groups.begin(), caller.groups.end(), gid) != caller.groups.end()) return true;
  }
  return false;
}

bool Policy::MatchesAccount(const PolicyRule& rule, const std::string& account) {
  return std::any_of(rule.accounts.begin(), rule.accounts.end(),
                     [&](const std::string& a) { return a == "*" || a == account; });
}

int Policy::Admits(const Caller& caller, const std::string& account, const std::string& method) const {
  for (const PolicyRule& rule : rules_) {
    if (!MatchesPrincipal(rule, caller) || !MatchesAccount(rule, account)) continue;
    for (const std::string& pattern : rule.methods) {
      if (MethodPatternMatches(pattern, method)) return rule.line > 0 ? rule.line : 1;
    }
  }
  return 0;
}

uint32_t Policy::ShareOf(const Caller& caller, const std::string& account) const {
  uint32_t share = 1;
  for (const PolicyRule& rule : rules_) {
    if (MatchesPrincipal(rule, caller) && MatchesAccount(rule, account)) share = std::max(share, rule.share);
  }
  return share;
}

bool Policy::AdmitsAccount(const Caller& caller, const std::string& account) const {
  return std::any_of(rules_.begin(), rules_.end(), [&](const PolicyRule& rule) {
    return MatchesPrincipal(rule, caller) && MatchesAccount(rule, account);
  });
}

bool Policy::AdmitsAdmin(const Caller& caller, const std::string& account) const {
  return std::any_of(rules_.begin(), rules_.end(), [&](const PolicyRule& rule) {
    return rule.admin && MatchesPrincipal(rule, caller) && MatchesAccount(rule, account);
  });
}

bool Policy::AdmitsTokenExport(const Caller& caller, const std::string& account) const {
  return std::any_of(rules_.begin(), rules_.end(), [&](const PolicyRule& rule) {
    return rule.token_export && MatchesPrincipal(rule, caller) && MatchesAccount(rule, account);
  });
}

bool Policy::AdmitsMetrics(const Caller& caller) const {
  return std::any_of(rules_.begin(), rules_.end(),
                     [&](const PolicyRule& rule) { return rule.metrics && MatchesPrincipal(rule, caller); });
}

}  // namespace stormbroker
