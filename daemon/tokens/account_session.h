// One account's token: obtained once with the password, kept alive before its
// inactivity deadline, replaced before the hard limit, and used for every call.
//
// Thread-safe. All upstream I/O is asynchronous; callbacks run on the upstream
// engine's or the scheduler's thread and must not block.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "secret/secret.h"
#include "tokens/scheduler.h"
#include "upstream/storm_client.h"

namespace stormbroker {

enum class AccountState {
  kStarting,     // no token yet; a login is under way
  kActive,       // holds a token
  kRefreshing,   // holds a token; a replacement login is under way
  kUnreachable,  // no token; the upstream could not be reached; retrying with backoff
  kLoginFailed,  // the upstream refused the credentials; no retries until restart
};

const char* AccountStateName(AccountState state);

struct AccountSnapshot {
  std::string name;
  std::string username;
  AccountState state = AccountState::kStarting;
  std::optional<std::chrono::system_clock::time_point> inactivity_deadline;
  std::optional<std::chrono::system_clock::time_point> hard_deadline;
  std::string last_error;
};

class AccountSession : public std::enable_shared_from_this<AccountSession> {
 public:
  // The API's hard limit on a token's life.
  static constexpr std::chrono::hours kMaxLifetime{12};

  AccountSession(const AccountConfig& account, StormUpstream& upstream, Scheduler& scheduler);

  // Begins the first login. Call once.
  void Start();
  // Cancels timers and fails waiting calls with UNAVAILABLE.
  void Stop();

  // Proxies one call with the account's token. Waits for a login under way.
  // A call the upstream rejects for its token (401: it was not executed) is
  // retried once after one fresh login. `done` gets the API's answer, or:
  // FAILED_PRECONDITION (credentials refused), UNAVAILABLE (upstream down).
  void Call(const std::string& method, const nlohmann::json& params,
            std::function<void(Result<ApiOutcome>)> done);

  AccountSnapshot Snapshot() const;

 private:
  struct Lease {
    Secret token;
    uint64_t generation;
  };
  using LeaseCallback = std::function<void(Result<Lease>)>;

  void AcquireToken(LeaseCallback done);
  void CallWithRetry(const std::string& method, const nlohmann::json& params, bool may_retry,
                     std::function<void(Result<ApiOutcome>)> done);
  // Drops the token of `generation` (if still current) and logs in again.
  void TokenRejected(uint64_t generation);

  // The following require mutex_ held. They never call out while holding it:
  // waiters to release are returned and called by the caller after unlocking.
  void BeginLoginLocked();
  void ScheduleLocked(Scheduler::Clock::time_point when, void (AccountSession::*what)());
  std::chrono::milliseconds NextBackoffLocked();

  void OnLoginReply(Scheduler::Clock::time_point sent_at, Result<StormReply> reply);
  void KeepAlive();
  void OnKeepAliveReply(Scheduler::Clock::time_point sent_at, uint64_t generation,
                        Result<StormReply> reply);
  void RetryLogin();
  // Takes token and expiry from a token reply; false with a reason when malformed.
  Status AdoptTokenLocked(Scheduler::Clock::time_point sent_at, const StormReply& reply,
                          bool new_token);
  void ScheduleKeepAliveLocked();
  Status LoginRefusedLocked() const;
  void FailWaiters(std::vector<LeaseCallback> waiters, const Status& status);

  const std::string name_;
  const std::string username_;
  const Secret password_;
  const std::chrono::milliseconds token_timeout_;
  StormUpstream& upstream_;
  Scheduler& scheduler_;

  mutable std::mutex mutex_;
  bool stopped_ = false;
  AccountState state_ = AccountState::kStarting;
  Secret token_;
  uint64_t generation_ = 0;
  bool login_in_flight_ = false;
  Scheduler::Clock::time_point inactivity_deadline_{};
  Scheduler::Clock::time_point hard_deadline_{};
  std::string last_error_;
  int failures_in_a_row_ = 0;
  std::optional<Scheduler::TaskId> timer_;
  std::vector<LeaseCallback> waiters_;
};

}  // namespace stormbroker
