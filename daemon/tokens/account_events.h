// What an account goes through, for the event stream (stormctl watch) and
// the status a person reads.
#pragma once

#include <chrono>
#include <string>

namespace stormbroker {

enum class AccountState {
  kStarting,       // no token yet; a login (or a check of a persisted token) is under way
  kActive,         // holds a token
  kRefreshing,     // holds a token; a replacement login is under way
  kNeedsPasscode,  // two-factor prompt: no valid token until an operator logs in
  kLoginFailed,    // the upstream refused the credentials; no retries until Login or restart
  kUnreachable,    // no token; the upstream could not be reached; retrying with backoff
};

const char* AccountStateName(AccountState state);

struct AccountEvent {
  std::string account;
  AccountState state = AccountState::kStarting;
  std::string message;  // what happened, in words; never a secret
  std::chrono::system_clock::time_point time;
};

// Receives events. Publish must not block and must not call into a session.
class AccountEventSink {
 public:
  virtual ~AccountEventSink() = default;
  virtual void Publish(const AccountEvent& event) = 0;
};

}  // namespace stormbroker
