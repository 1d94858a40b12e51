#include "tokens/account_events.h"

namespace stormbroker {

const char* AccountStateName(AccountState state) {
  switch (state) {
    case AccountState::kStarting: return "starting";
    case AccountState::kActive: return "active";
    case AccountState::kRefreshing: return "refreshing";
    case AccountState::kNeedsPasscode: return "needs-passcode";
    case AccountState::kLoginFailed: return "login-failed";
    case AccountState::kUnreachable: return "unreachable";
  }
  return "unknown";
}

}  // namespace stormbroker
