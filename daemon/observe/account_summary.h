// What a person (systemctl status) and systemd (readiness) need to know about
// the accounts, in one line.
#pragma once

#include <string>
#include <vector>

#include "tokens/account_session.h"

namespace stormbroker {

// e.g. "3 accounts: 2 active, 1 needs-passcode" with, for each account that
// failed for good, "; prod: <why>".
std::string SummarizeAccounts(const std::vector<AccountSnapshot>& accounts);

// Whether every account has had its first say: it holds a token, its login
// was refused, its upstream could not be reached (it keeps retrying), or it
// waits for an operator's passcode. Only then is the daemon ready.
bool AccountsSettled(const std::vector<AccountSnapshot>& accounts);

}  // namespace stormbroker
