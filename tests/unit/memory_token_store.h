// Test doubles for the session's outputs: a token store in memory and an
// event sink that records.
#pragma once

#include <map>
#include <absl/synchronization/mutex.h>
#include <vector>

#include "tokens/account_events.h"
#include "tokens/token_store.h"

namespace stormbroker::testing {

class MemoryTokenStore : public TokenStore {
 public:
  Status Save(const std::string& account, const PersistedToken& state) override {
    if (fail_saves) return Unavailable("No space left on device");
    PersistedToken copy{state.username, state.token.Clone(), state.hard_deadline, state.inactivity_deadline,
                        state.last_totp_step};
    saved[account] = std::move(copy);
    return Status::Ok();
  }
  std::optional<PersistedToken> Load(const std::string& account) override {
    auto it = saved.find(account);
    if (it == saved.end()) return std::nullopt;
    const PersistedToken& s = it->second;
    return PersistedToken{s.username, s.token.Clone(), s.hard_deadline, s.inactivity_deadline, s.last_totp_step};
  }
  Status Remove(const std::string& account) override {
    saved.erase(account);
    return Status::Ok();
  }

  std::map<std::string, PersistedToken> saved;
  bool fail_saves = false;
};

class RecordingEvents : public AccountEventSink {
 public:
  void Publish(const AccountEvent& event) override {
    absl::MutexLock lock(&mutex);
    events.push_back(event);
  }
  AccountEvent Last() {
    absl::MutexLock lock(&mutex);
    return events.back();
  }
  std::vector<std::string> Messages() {
    absl::MutexLock lock(&mutex);
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.message);
    return out;
  }

  absl::Mutex mutex;
  std::vector<AccountEvent> events ABSL_GUARDED_BY(mutex);
};

}  // namespace stormbroker::testing
