// One account's token, from first login to replacement, so that callers never
// see a token problem the broker could have prevented:
//  - one login at start (or a persisted token reused after a keep-alive check);
//  - keep-alive well before the inactivity deadline;
//  - a replacement obtained before the hard limit (make before break: new calls
//    switch to it, the old one is expired upstream once its calls are done);
//  - single flight: however many callers need a token, one login runs;
//  - transient upstream faults retried with jittered backoff, never past the
//    deadline; refused credentials stop retries (an account lockout costs more);
//  - two-factor by prompt (an operator's passcode through Login) or by TOTP.
//
// Thread-safe. All upstream I/O is asynchronous; callbacks run on the upstream
// engine's or the scheduler's thread and must not block. Nothing is called out
// while the session's mutex is held, except the event sink and token store,
// which must not call back into the session.
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
#include "tokens/account_events.h"
#include "tokens/scheduler.h"
#include "tokens/token_store.h"
#include "upstream/storm_client.h"

namespace stormbroker {

struct AccountSnapshot {
  std::string name;
  std::string username;
  TwoFactor two_factor = TwoFactor::kNone;
  AccountState state = AccountState::kStarting;
  std::optional<std::chrono::system_clock::time_point> inactivity_deadline;
  std::optional<std::chrono::system_clock::time_point> hard_deadline;
  std::optional<std::chrono::system_clock::time_point> renew_at;  // next replacement (none, totp)
  std::string last_error;
  std::string warning;  // e.g. "token expires in 15 min: run stormctl login prod"
};

class AccountSession : public std::enable_shared_from_this<AccountSession> {
 public:
  // `store` and `events` may be null (no persistence, no event stream).
  AccountSession(const AccountConfig& account, StormUpstream& upstream, Scheduler& scheduler, TokenStore* store,
                 AccountEventSink* events);

  // Reuses a persisted token or begins the first login (none, totp). Call once.
  void Start();
  // Cancels timers and fails waiting calls with UNAVAILABLE. With
  // `expire_tokens` (the account's expire_on_shutdown), also expires its tokens
  // upstream and forgets the persisted one; `done` runs when that is over.
  void Stop(bool expire_tokens, std::function<void()> done);

  // Proxies one call with the account's token; waits for a login under way. A
  // call the upstream rejects for its token (401: it was not executed) costs
  // the token nothing by itself: a keep-alive confirms whether the token is
  // dead (one at a time per token, however many calls were rejected). Dead:
  // one fresh login (at most one per relogin_interval) and the call is
  // retried once. Alive: the call is retried once with it. Unknown: the
  // API's answer goes back as it came. `done` gets the API's answer, or
  // FAILED_PRECONDITION (needs a login, or credentials refused: the message
  // says what to do), UNAVAILABLE (upstream unreachable).
  // `deadline` (the caller's, on the scheduler's clock) bounds the upstream
  // exchange too, so a caller that gave up does not leave a transfer running;
  // past it, DEADLINE_EXCEEDED.
  void Call(const std::string& method, const nlohmann::json& params, std::optional<Scheduler::Clock::time_point> deadline,
            std::function<void(Result<ApiOutcome>)> done);

  // An operator's login. Prompt mode: logs in with `passcode`. Otherwise the
  // passcode is ignored, the password file is read again and a fresh login
  // runs (the way out of login-failed). `done` says how it went.
  void Login(Secret passcode, std::function<void(Status)> done);
  // Expires the token upstream now. Afterwards a prompt account needs a new
  // Login; the others log in again on the next call.
  void Logout(std::function<void(Status)> done);

  AccountSnapshot Snapshot() const;
  // The current token, for a caller that policy lets read it; with the
  // snapshot for its deadlines. FAILED_PRECONDITION when there is none.
  Result<Secret> CurrentToken() const;
  bool expire_on_shutdown() const { return account_.expire_on_shutdown; }

 private:
  using Clock = Scheduler::Clock;
  // What a keep-alive said of a token the API had refused for a call.
  enum class TokenCheck { kAlive, kRejected, kUnknown };
  using CheckCallback = std::function<void(TokenCheck)>;
  // A token and the calls using it. Retired slots are expired upstream when
  // their last call finishes.
  struct Slot {
    Secret token;
    uint64_t generation = 0;
    Clock::time_point hard_deadline{};
    Clock::time_point inactivity_deadline{};
    int in_flight = 0;
    bool retired = false;
    // Calls waiting for the keep-alive that confirms whether the token is
    // alive after the API refused it for one call (empty: none under way).
    std::vector<CheckCallback> confirm_waiters;
  };
  struct Lease {
    std::shared_ptr<Slot> slot;
    Secret token;
  };
  using LeaseCallback = std::function<void(Result<Lease>)>;
  enum class LoginKind { kFirst, kRenewal, kOperator, kCheckPersisted };

  void AcquireToken(LeaseCallback done);
  // Gives `outcome` to `waiter` once the mutex is released.
  void HandOutLocked(LeaseCallback waiter, Result<Lease> outcome);
  // Hands every waiting call a lease on `slot`.
  void LeaseWaitersLocked(const std::shared_ptr<Slot>& slot);
  void Release(const std::shared_ptr<Slot>& slot);
  void CallWithRetry(const std::string& method, const nlohmann::json& params,
                     std::optional<Clock::time_point> deadline, bool may_retry,
                     std::function<void(Result<ApiOutcome>)> done);
  void TokenRejected(uint64_t generation);
  // Asks the API, with a keep-alive, whether `slot`'s token still works.
  void ConfirmToken(const std::shared_ptr<Slot>& slot, CheckCallback done);
  void OnConfirmReply(const std::shared_ptr<Slot>& slot, Clock::time_point sent_at, Result<StormReply> reply);

  // --- everything below requires mutex_ ---
  bool CanLogInUnattendedLocked() const { return account_.two_factor != TwoFactor::kPrompt; }
  void BeginLoginLocked(LoginKind kind, Secret passcode = Secret(), std::function<void(Status)> done = nullptr);
  void SendLoginLocked(LoginKind kind, Secret passcode, std::function<void(Status)> done);
  void OnLoginReply(LoginKind kind, Clock::time_point sent_at, std::function<void(Status)> done,
                    Result<StormReply> reply);
  void OnCheckReply(Clock::time_point sent_at, Result<StormReply> reply);
  void KeepAlive();
  void OnKeepAliveReply(Clock::time_point sent_at, uint64_t generation, Result<StormReply> reply);
  void Renew();
  void HardDeadlineReached(uint64_t generation);
  void Warn(std::chrono::minutes before);

  // Reads token and expiry from a token reply into `slot`.
  Status ReadTokenReplyLocked(Clock::time_point sent_at, const StormReply& reply, Slot* slot) const;
  void InstallLocked(std::shared_ptr<Slot> slot);
  void RetireLocked(std::shared_ptr<Slot> slot);
  void ExpireUpstream(std::shared_ptr<Slot> slot, std::function<void(Status)> done = nullptr);
  void DropTokenLocked(AccountState next, const std::string& why);
  void ScheduleTimersLocked();
  void CancelTimersLocked();
  Scheduler::TaskId AtLocked(Clock::time_point when, std::function<void(AccountSession&)> task);
  std::chrono::milliseconds NextBackoffLocked();
  void SetStateLocked(AccountState state, const std::string& message);
  void PersistLocked();
  Status NeedsLoginLocked() const;
  Status LoginRefusedLocked() const;
  std::chrono::system_clock::time_point ToWall(Clock::time_point t) const;

  class Guard;  // the mutex, plus work deferred until it is released
  // Runs `work` once the mutex is released (by the Guard that holds it).
  void DeferLocked(std::function<void()> work) { deferred_.push_back(std::move(work)); }

  const AccountConfig account_;
  StormUpstream& upstream_;
  Scheduler& scheduler_;
  TokenStore* store_;
  AccountEventSink* events_;

  mutable std::mutex mutex_;
  bool stopped_ = false;
  AccountState state_ = AccountState::kStarting;
  std::shared_ptr<Slot> current_;
  uint64_t next_generation_ = 1;
  bool login_in_flight_ = false;  // single flight: also covers a wait for the next TOTP step
  int64_t last_totp_step_ = -1;
  std::string last_error_;
  std::string warning_;
  int failures_in_a_row_ = 0;
  std::optional<Clock::time_point> last_relogin_;  // after a rejected token: see relogin_interval
  std::optional<Clock::time_point> renew_at_;
  std::vector<Scheduler::TaskId> timers_;
  std::optional<Scheduler::TaskId> retry_timer_;
  std::vector<LeaseCallback> waiters_;
  std::vector<std::shared_ptr<Slot>> retiring_;  // replaced tokens with calls still running
  std::vector<std::function<void()>> deferred_;
  Secret password_;  // re-read from the file on an operator Login
};

}  // namespace stormbroker
