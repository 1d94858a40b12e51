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
// while the session's mutex is held but the event sink, the token store, the
// meter and the fleet link's Publish and ReportRejected, none of which may
// call back into the session (each only records or queues): work for outside
// (upstream calls, callers' callbacks) is deferred until the mutex is
// released.
//
// The implementation is in four files: account_session.cc (start, stop and
// calls), account_login.cc (logins), account_upkeep.cc (keep-alive,
// renewal, deadlines, logout) and account_fleet.cc (its role in a fleet);
// which token a call gets and when a replaced one goes is TokenPool's
// bookkeeping (token_pool.h).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <absl/synchronization/mutex.h>

#include "config/config.h"
#include "secret/secret.h"
#include "tokens/account_events.h"
#include "tokens/account_meter.h"
#include "tokens/fleet_link.h"
#include "tokens/backoff.h"
#include "runtime/scheduler.h"
#include "tokens/token_reply.h"
#include "tokens/token_pool.h"
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
  // Fleet mode: this machine's role for the account, and the machine that
  // leads it (both empty when alone).
  std::string fleet_role;
  std::string fleet_leader;
};

// The token a session holds, read together with the deadlines that go with it.
struct HeldToken {
  Secret token;
  AccountSnapshot snapshot;
};

class AccountSession : public std::enable_shared_from_this<AccountSession> {
 public:
  // `store`, `events` and `meter` may be null (no persistence, no event
  // stream, nothing counted). With a `fleet` link the session starts as a
  // follower and waits for SetRole; without one it leads alone.
  AccountSession(const AccountConfig& account, StormUpstream& upstream, Scheduler& scheduler, TokenStore* store,
                 AccountEventSink* events, AccountMeter* meter = nullptr, FleetLink* fleet = nullptr);

  // Reuses a persisted token or begins the first login (none, totp). Call once.
  void Start() ABSL_LOCKS_EXCLUDED(mutex_);
  // Cancels timers and fails waiting calls with UNAVAILABLE. With
  // `expire_tokens` (the account's expire_on_shutdown), also expires its tokens
  // upstream and forgets the persisted one; `done` runs when that is over.
  void Stop(bool expire_tokens, std::function<void()> done) ABSL_LOCKS_EXCLUDED(mutex_);

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
  // past it, DEADLINE_EXCEEDED. `version` is the API version to call
  // (empty: upstream.url's). `caller` is whose call it is in the line for
  // the API (its account is set here).
  void Call(const std::string& method, const nlohmann::json& params, std::optional<Scheduler::Clock::time_point> deadline,
            std::function<void(Result<ApiOutcome>)> done, const std::string& version = "", Lane caller = {})
      ABSL_LOCKS_EXCLUDED(mutex_);

  // An operator's login. Prompt mode: logs in with `passcode`. Otherwise the
  // passcode is ignored, the password file is read again and a fresh login
  // runs (the way out of login-failed). `done` says how it went.
  void Login(Secret passcode, std::function<void(Status)> done) ABSL_LOCKS_EXCLUDED(mutex_);
  // Expires the token upstream now. Afterwards a prompt account needs a new
  // Login; the others log in again on the next call.
  void Logout(std::function<void(Status)> done) ABSL_LOCKS_EXCLUDED(mutex_);

  // Fleet mode. kLead: a token adopted from the fleet is checked with one
  // keep-alive and kept (no login); without one, a login as at Start. kFollow
  // and kStranded: no login, no renewal, and a replaced token is dropped,
  // never expired upstream (the leader does that). `leader` names the
  // machine that leads, for status and messages.
  void SetRole(TokenRole role, const std::string& leader) ABSL_LOCKS_EXCLUDED(mutex_);
  // A token the fleet's leader published. Ignored while this session leads
  // (it is the source) or when the token is already past a deadline.
  void Adopt(FleetToken token) ABSL_LOCKS_EXCLUDED(mutex_);
  // Another machine's calls were refused with the token this session leads
  // with: a keep-alive says whether it is dead (then a login, as for any
  // rejected token) or alive (then nothing changes).
  void CheckToken() ABSL_LOCKS_EXCLUDED(mutex_);

  AccountSnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mutex_);
  // The current token with its deadlines, for a caller that policy lets read
  // it. FAILED_PRECONDITION when there is none.
  Result<HeldToken> CurrentToken() const ABSL_LOCKS_EXCLUDED(mutex_);
  bool expire_on_shutdown() const { return account_.expire_on_shutdown; }

 private:
  using Clock = Scheduler::Clock;
  using TokenCheck = TokenPool::Check;
  using CheckCallback = std::function<void(TokenCheck)>;
  using Slot = TokenPool::Slot;
  struct Lease {
    std::shared_ptr<Slot> slot;
    Secret token;
  };
  using LeaseCallback = std::function<void(Result<Lease>)>;
  // What to do with the answer to a keep-alive sent at `sent_at`; runs
  // without the mutex.
  using KeepAliveReply = std::function<void(AccountSession&, Clock::time_point sent_at, Result<StormReply>)>;
  enum class LoginKind { kFirst, kRenewal, kOperator };

  // --- calls (account_session.cc)
  void CallWithRetry(const std::string& method, const std::string& version, const nlohmann::json& params,
                     std::optional<Clock::time_point> deadline, Lane lane, bool may_retry,
                     std::function<void(Result<ApiOutcome>)> done) ABSL_LOCKS_EXCLUDED(mutex_);
  // The line's lane for the account's own requests: ahead of its callers'.
  Lane UpkeepLane() const {
    Lane lane;
    lane.account = account_.name;
    lane.upkeep = true;
    return lane;
  }
  void AcquireToken(LeaseCallback done) ABSL_LOCKS_EXCLUDED(mutex_);
  void Release(const std::shared_ptr<Slot>& slot) ABSL_LOCKS_EXCLUDED(mutex_);
  // Asks the API, with a keep-alive, whether `slot`'s token still works.
  void ConfirmToken(const std::shared_ptr<Slot>& slot, CheckCallback done) ABSL_LOCKS_EXCLUDED(mutex_);
  void OnConfirmReply(const std::shared_ptr<Slot>& slot, Clock::time_point sent_at, Result<StormReply> reply)
      ABSL_LOCKS_EXCLUDED(mutex_);
  void TokenRejected(uint64_t generation) ABSL_LOCKS_EXCLUDED(mutex_);
  // Gives `outcome` to `waiter` once the mutex is released.
  void HandOutLocked(LeaseCallback waiter, Result<Lease> outcome) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Hands every waiting call a lease on `slot`.
  void LeaseWaitersLocked(const std::shared_ptr<Slot>& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Fails every waiting call with `status`.
  void FailWaitersLocked(const Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // --- logins (account_login.cc)
  bool CanLogInUnattended() const { return account_.two_factor != TwoFactor::kPrompt; }
  // Logs in by itself: unattended, and obtaining the account's tokens.
  bool MayLogInLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return role_ == TokenRole::kLead && CanLogInUnattended();
  }
  void BeginLoginLocked(LoginKind kind, Secret passcode = Secret(), std::function<void(Status)> done = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void SendLoginLocked(LoginKind kind, Secret passcode, std::function<void(Status)> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void OnLoginReply(LoginKind kind, Clock::time_point sent_at, std::function<void(Status)> done,
                    Result<StormReply> reply) ABSL_LOCKS_EXCLUDED(mutex_);
  void OnCheckReply(uint64_t generation, Clock::time_point sent_at, Result<StormReply> reply)
      ABSL_LOCKS_EXCLUDED(mutex_);
  Status NeedsLoginLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Why a call finds no token: needs a passcode, or (following) waits for the leader's.
  Status NoTokenLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The state a session without a token waits in, and what it waits for.
  void AwaitTokenLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Status LoginRefusedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // --- keeping the token (account_upkeep.cc)
  void KeepAlive() ABSL_LOCKS_EXCLUDED(mutex_);
  void OnKeepAliveReply(Clock::time_point sent_at, uint64_t generation, Result<StormReply> reply)
      ABSL_LOCKS_EXCLUDED(mutex_);
  void Renew() ABSL_LOCKS_EXCLUDED(mutex_);
  void HardDeadlineReached(uint64_t generation) ABSL_LOCKS_EXCLUDED(mutex_);
  void Warn(std::chrono::minutes before) ABSL_LOCKS_EXCLUDED(mutex_);
  void ExpireUpstream(std::shared_ptr<Slot> slot, std::function<void(Status)> done = nullptr)
      ABSL_LOCKS_EXCLUDED(mutex_);
  // Sends a keep-alive with `slot`'s token once the mutex is released.
  void SendKeepAliveLocked(const std::shared_ptr<Slot>& slot, KeepAliveReply on_reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Takes the token and its inactivity deadline from an answer to a token
  // request sent at `sent_at` into `slot`; the reply's fault otherwise.
  Status TakeGrantLocked(Clock::time_point sent_at, const Result<StormReply>& reply, Slot* slot) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // A replaced token: expired upstream once its calls are done (after the
  // fleet's grace, when leading a fleet); a follower just lets it go.
  void RetireLocked(std::shared_ptr<Slot> slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void RetireNowLocked(std::shared_ptr<Slot> slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void DropTokenLocked(AccountState next, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void ScheduleTimersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void CancelTimersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // --- shared (account_session.cc)
  // Runs `task` at `when` with the mutex held, unless the session stopped.
  using Task = std::function<void(AccountSession&)>;
  Scheduler::TaskId AtLocked(Clock::time_point when, Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void SetStateLocked(AccountState state, const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Keeps the token for a restart (with a store) and, leading a fleet,
  // publishes it to the other machines.
  void PersistLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  AccountSnapshot SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::chrono::system_clock::time_point ToWall(Clock::time_point t) const;

  // Holds the mutex; on release, runs the work deferred meanwhile.
  class ABSL_SCOPED_LOCKABLE Guard {
   public:
    explicit Guard(AccountSession& session) ABSL_EXCLUSIVE_LOCK_FUNCTION(session.mutex_) : session_(session) {
      session_.mutex_.Lock();
    }
    ~Guard() ABSL_UNLOCK_FUNCTION() {
      std::vector<std::function<void()>> work;
      work.swap(session_.deferred_);
      session_.mutex_.Unlock();
      for (auto& item : work) item();
    }

   private:
    AccountSession& session_;
  };
  // Runs `work` once the mutex is released (by the Guard that holds it).
  void DeferLocked(std::function<void()> work) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    deferred_.push_back(std::move(work));
  }

  const AccountConfig account_;
  StormUpstream& upstream_;
  Scheduler& scheduler_;
  TokenStore* store_;
  AccountEventSink* events_;
  AccountMeter& meter_;
  FleetLink* const fleet_;

  mutable absl::Mutex mutex_;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  AccountState state_ ABSL_GUARDED_BY(mutex_) = AccountState::kStarting;
  TokenPool pool_ ABSL_GUARDED_BY(mutex_);
  // Single flight: also covers a wait for the next TOTP step or relogin_interval.
  bool login_in_flight_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t last_totp_step_ ABSL_GUARDED_BY(mutex_) = -1;
  std::string last_error_ ABSL_GUARDED_BY(mutex_);
  std::string warning_ ABSL_GUARDED_BY(mutex_);
  Backoff backoff_ ABSL_GUARDED_BY(mutex_);
  // After a rejected token: see relogin_interval.
  std::optional<Clock::time_point> last_relogin_ ABSL_GUARDED_BY(mutex_);
  std::optional<Clock::time_point> renew_at_ ABSL_GUARDED_BY(mutex_);
  std::vector<Scheduler::TaskId> timers_ ABSL_GUARDED_BY(mutex_);
  std::optional<Scheduler::TaskId> retry_timer_ ABSL_GUARDED_BY(mutex_);
  std::vector<LeaseCallback> waiters_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::function<void()>> deferred_ ABSL_GUARDED_BY(mutex_);
  Secret password_ ABSL_GUARDED_BY(mutex_);  // re-read from the file on an operator Login
  TokenRole role_ ABSL_GUARDED_BY(mutex_);
  std::string leader_ ABSL_GUARDED_BY(mutex_);
};

// The daemon's sessions, by account name.
using AccountSessions = std::map<std::string, std::shared_ptr<AccountSession>>;

}  // namespace stormbroker
