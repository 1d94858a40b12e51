#include "observe/account_summary.h"

#include <algorithm>
#include <map>

namespace stormbroker {

std::string SummarizeAccounts(const std::vector<AccountSnapshot>& accounts) {
  std::map<std::string, int> by_state;
  std::string failures;
  for (const auto& account : accounts) {
    ++by_state[AccountStateName(account.state)];
    if (account.state == AccountState::kLoginFailed) failures += "; " + account.name + ": " + account.last_error;
  }
  std::string text = std::to_string(accounts.size()) + (accounts.size() == 1 ? " account: " : " accounts: ");
  bool first = true;
  for (const auto& [state, count] : by_state) {
    text += (first ? "" : ", ") + std::to_string(count) + " " + state;
    first = false;
  }
  return text + failures;
}

bool AccountsSettled(const std::vector<AccountSnapshot>& accounts) {
  return std::none_of(accounts.begin(), accounts.end(),
                      [](const AccountSnapshot& a) { return a.state == AccountState::kStarting; });
}

}  // namespace stormbroker
