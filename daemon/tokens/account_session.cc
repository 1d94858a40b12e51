#include "tokens/account_session.h"

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>

#include "tokens/totp.h"

namespace stormbroker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kTokenMethod = "Account/Auth/token";
constexpr const char* kExpireMethod = "Account/Auth/expireToken";
constexpr seconds kMaxBackoff{60};
constexpr std::chrono::minutes kWarnings[] = {std::chrono::minutes(60), std::chrono::minutes(15),
                                             std::chrono::minutes(5)};

double Jitter(double low, double high) {
  thread_local std::mt19937 random{std::random_device{}()};
  return std::uniform_real_distribution<double>(low, high)(random);
}

std::string Describe(const ApiError& error) {
  std::string text = error.error_class;
  if (!error.message.empty()) text += ": " + error.message;
  if (error.http_status != 200) text += " (HTTP " + std::to_string(error.http_status) + ")";
  return text;
}

int64_t EpochSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

template <typename Duration>
Scheduler::Clock::duration Scaled(Duration d, double factor) {
  return std::chrono::duration_cast<Scheduler::Clock::duration>(d * factor);
}

}  // namespace

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

class AccountSession::Guard {
 public:
  explicit Guard(AccountSession& session) : session_(session), lock_(session.mutex_) {}
  ~Guard() {
    std::vector<std::function<void()>> work;
    work.swap(session_.deferred_);
    lock_.unlock();
    for (auto& item : work) item();
  }

 private:
  AccountSession& session_;
  std::unique_lock<std::mutex> lock_;
};

AccountSession::AccountSession(const AccountConfig& account, StormUpstream& upstream, Scheduler& scheduler,
                               TokenStore* store, AccountEventSink* events)
    : account_(account.Clone()),
      upstream_(upstream),
      scheduler_(scheduler),
      store_(store),
      events_(events),
      password_(account.password.Clone()) {}

// ---------------------------------------------------------------- start, stop

void AccountSession::Start() {
  Guard guard(*this);
  if (store_) {
    if (auto saved = store_->Load(account_.name)) {
      last_totp_step_ = saved->last_totp_step;
      int64_t wall_now = EpochSeconds(scheduler_.WallNow());
      if (last_totp_step_ > TotpStep(wall_now)) {
        // Not written by this clock: trust neither it nor the token beside it,
        // and spend no passcode of the current step.
        spdlog::warn("account {}: the state file names a two-factor step from the future; ignoring it",
                     account_.name);
        last_totp_step_ = TotpStep(wall_now);
        saved->token = Secret();
      }
      // Reuse only a token that has life left, for the same user.
      if (saved->username == account_.username && !saved->token.empty() && saved->hard_deadline > wall_now + 2 &&
          saved->inactivity_deadline > wall_now + 1) {
        auto slot = std::make_shared<Slot>();
        slot->token = std::move(saved->token);
        slot->generation = next_generation_++;
        slot->hard_deadline = scheduler_.Now() + seconds(saved->hard_deadline - wall_now);
        slot->inactivity_deadline = scheduler_.Now() + seconds(saved->inactivity_deadline - wall_now);
        current_ = slot;
        SetStateLocked(AccountState::kStarting, "checking the token kept from the last run");
        login_in_flight_ = true;
        auto sent_at = scheduler_.Now();
        nlohmann::json params = {{"timeout", account_.token_timeout.count() / 1000}};
        auto self = shared_from_this();
        DeferLocked([self, slot, params, sent_at] {
          self->upstream_.Call(kTokenMethod, params, {self->account_.username, slot->token},
                               [self, sent_at](Result<StormReply> reply) { self->OnCheckReply(sent_at, std::move(reply)); });
        });
        return;
      }
    }
  }
  if (CanLogInUnattendedLocked()) {
    BeginLoginLocked(LoginKind::kFirst);
  } else {
    SetStateLocked(AccountState::kNeedsPasscode,
                   "waiting for a two-factor login: run stormctl login " + account_.name);
  }
}

void AccountSession::Stop(bool expire_tokens, std::function<void()> done) {
  Guard guard(*this);
  stopped_ = true;
  CancelTimersLocked();
  if (retry_timer_) scheduler_.Cancel(*retry_timer_);
  retry_timer_.reset();
  std::vector<LeaseCallback> waiters;
  waiters.swap(waiters_);
  DeferLocked([waiters = std::move(waiters)] {
    for (auto& waiter : waiters) waiter(Unavailable("the broker is shutting down"));
  });
  std::vector<std::shared_ptr<Slot>> to_expire;
  if (expire_tokens) {
    if (current_) to_expire.push_back(current_);
    to_expire.insert(to_expire.end(), retiring_.begin(), retiring_.end());
    retiring_.clear();
    current_ = nullptr;
    if (store_) store_->Remove(account_.name);
  }
  if (to_expire.empty()) {
    if (done) DeferLocked(std::move(done));
    return;
  }
  auto remaining = std::make_shared<std::atomic<int>>(static_cast<int>(to_expire.size()));
  auto self = shared_from_this();
  DeferLocked([self, to_expire, remaining, done] {
    for (const auto& slot : to_expire) {
      self->ExpireUpstream(slot, [remaining, done](Status) {
        if (--*remaining == 0 && done) done();
      });
    }
  });
}

// ---------------------------------------------------------------- calls

void AccountSession::Call(const std::string& method, const nlohmann::json& params,
                          std::optional<Clock::time_point> deadline, std::function<void(Result<ApiOutcome>)> done) {
  CallWithRetry(method, params, deadline, /*may_retry=*/true, std::move(done));
}

void AccountSession::CallWithRetry(const std::string& method, const nlohmann::json& params,
                                   std::optional<Clock::time_point> deadline, bool may_retry,
                                   std::function<void(Result<ApiOutcome>)> done) {
  auto self = shared_from_this();
  AcquireToken([self, method, params, deadline, may_retry, done = std::move(done)](Result<Lease> lease) mutable {
    if (!lease.ok()) {
      done(lease.status());
      return;
    }
    std::shared_ptr<Slot> slot = lease->slot;
    milliseconds budget(0);
    if (deadline) {
      budget = std::chrono::duration_cast<milliseconds>(*deadline - self->scheduler_.Now());
      if (budget.count() <= 0) {
        self->Release(slot);
        done(Status(StatusCode::kDeadlineExceeded, "the caller's deadline passed before the call could be sent"));
        return;
      }
    }
    self->upstream_.Call(
        method, params, {self->account_.username, lease->token},
        [self, method, params, deadline, may_retry, slot, done = std::move(done)](Result<StormReply> reply) mutable {
          self->Release(slot);
          if (may_retry && reply.ok() && reply->outcome.is_error && IsAuthorizationFailure(reply->outcome.error)) {
            // The API refused our token for this call, so it did not run it.
            // One refusal is no proof the token is dead (a caller must not be
            // able to make the broker drop a good token): ask first.
            auto refused = std::make_shared<ApiOutcome>(std::move(reply->outcome));
            self->ConfirmToken(slot, [self, method, params, deadline, slot, refused,
                                      done = std::move(done)](TokenCheck check) mutable {
              if (check == TokenCheck::kUnknown) return done(std::move(*refused));
              if (check == TokenCheck::kRejected) self->TokenRejected(slot->generation);
              self->CallWithRetry(method, params, deadline, /*may_retry=*/false, std::move(done));
            });
            return;
          }
          if (!reply.ok()) {
            // Cut at the caller's deadline (the exchange's timeout was what
            // was left of it): say so, not that the upstream is down.
            if (deadline && self->scheduler_.Now() >= *deadline - milliseconds(20)) {
              done(Status(StatusCode::kDeadlineExceeded,
                          "the caller's deadline passed before the Storm API answered (" + reply.status().message() +
                              ")"));
              return;
            }
            done(reply.status());
            return;
          }
          done(std::move(reply->outcome));
        },
        budget);
  });
}

void AccountSession::AcquireToken(LeaseCallback done) {
  Guard guard(*this);
  if (stopped_) return HandOutLocked(std::move(done), Unavailable("the broker is shutting down"));
  if (current_ && state_ != AccountState::kStarting) {
    ++current_->in_flight;
    return HandOutLocked(std::move(done), Lease{current_, current_->token.Clone()});
  }
  if (login_in_flight_) {
    waiters_.push_back(std::move(done));
    return;
  }
  switch (state_) {
    case AccountState::kNeedsPasscode:
      return HandOutLocked(std::move(done), NeedsLoginLocked());
    case AccountState::kLoginFailed:
      return HandOutLocked(std::move(done), LoginRefusedLocked());
    case AccountState::kUnreachable:
      return HandOutLocked(std::move(done), Unavailable("account " + account_.name + " has no token: " + last_error_ +
                                                        "; the broker keeps retrying"));
    default:  // no token and nothing under way (after a logout): log in now
      if (!CanLogInUnattendedLocked()) return HandOutLocked(std::move(done), NeedsLoginLocked());
      BeginLoginLocked(LoginKind::kFirst);
      waiters_.push_back(std::move(done));
  }
}

void AccountSession::LeaseWaitersLocked(const std::shared_ptr<Slot>& slot) {
  std::vector<LeaseCallback> waiters;
  waiters.swap(waiters_);
  for (auto& waiter : waiters) {
    ++slot->in_flight;
    HandOutLocked(std::move(waiter), Lease{slot, slot->token.Clone()});
  }
}

void AccountSession::HandOutLocked(LeaseCallback waiter, Result<Lease> outcome) {
  // std::function needs copyable captures; a Secret is not.
  auto shared = std::make_shared<Result<Lease>>(std::move(outcome));
  DeferLocked([waiter = std::move(waiter), shared] { waiter(std::move(*shared)); });
}

void AccountSession::Release(const std::shared_ptr<Slot>& slot) {
  Guard guard(*this);
  if (--slot->in_flight == 0 && slot->retired && !stopped_) {
    auto self = shared_from_this();
    DeferLocked([self, slot] { self->ExpireUpstream(slot); });
  }
}

void AccountSession::ConfirmToken(const std::shared_ptr<Slot>& slot, CheckCallback done) {
  Guard guard(*this);
  if (stopped_) return DeferLocked([done] { done(TokenCheck::kUnknown); });
  slot->confirm_waiters.push_back(std::move(done));
  if (slot->confirm_waiters.size() > 1) return;  // one keep-alive answers them all
  auto sent_at = scheduler_.Now();
  nlohmann::json params = {{"timeout", account_.token_timeout.count() / 1000}};
  auto self = shared_from_this();
  DeferLocked([self, slot, sent_at, params] {
    self->upstream_.Call(kTokenMethod, params, {self->account_.username, slot->token},
                         [self, slot, sent_at](Result<StormReply> reply) {
                           self->OnConfirmReply(slot, sent_at, std::move(reply));
                         });
  });
}

void AccountSession::OnConfirmReply(const std::shared_ptr<Slot>& slot, Clock::time_point sent_at,
                                    Result<StormReply> reply) {
  Guard guard(*this);
  TokenCheck check = TokenCheck::kUnknown;
  if (reply.ok() && reply->outcome.is_error && IsAuthorizationFailure(reply->outcome.error)) {
    check = TokenCheck::kRejected;
  } else if (reply.ok() && !reply->outcome.is_error && ReadTokenReplyLocked(sent_at, *reply, slot.get()).ok()) {
    check = TokenCheck::kAlive;
    spdlog::warn("account {}: the Storm API refused the token for a call, but a keep-alive shows it alive; keeping it",
                 account_.name);
    if (slot == current_) PersistLocked();
  }
  std::vector<CheckCallback> waiters;
  waiters.swap(slot->confirm_waiters);
  DeferLocked([waiters = std::move(waiters), check] {
    for (auto& waiter : waiters) waiter(check);
  });
}

void AccountSession::TokenRejected(uint64_t generation) {
  Guard guard(*this);
  if (stopped_ || !current_ || current_->generation != generation) return;
  spdlog::warn("account {}: the Storm API rejected the token", account_.name);
  if (CanLogInUnattendedLocked()) {
    DropTokenLocked(AccountState::kStarting, "the Storm API rejected the token; logging in again");
    auto now = scheduler_.Now();
    if (last_relogin_ && now < *last_relogin_ + account_.relogin_interval && !login_in_flight_) {
      // Password logins cost the account: a flapping upstream gets at most
      // one per relogin_interval. Calls wait for it as for any login.
      auto at = *last_relogin_ + account_.relogin_interval;
      spdlog::warn("account {}: next login in {} ms (at most one per relogin_interval after a rejected token)",
                   account_.name, std::chrono::duration_cast<milliseconds>(at - now).count());
      login_in_flight_ = true;
      retry_timer_ = AtLocked(at, [](AccountSession& s) {
        s.retry_timer_.reset();
        s.last_relogin_ = s.scheduler_.Now();
        s.SendLoginLocked(LoginKind::kFirst, Secret(), nullptr);
      });
      return;
    }
    last_relogin_ = now;
    BeginLoginLocked(LoginKind::kFirst);
  } else {
    DropTokenLocked(AccountState::kNeedsPasscode,
                    "the Storm API rejected the token; run stormctl login " + account_.name);
  }
}

// ---------------------------------------------------------------- logins

void AccountSession::Login(Secret passcode, std::function<void(Status)> done) {
  Guard guard(*this);
  auto refuse = [&](Status status) { DeferLocked([done, status] { done(status); }); };
  if (stopped_) return refuse(Unavailable("the broker is shutting down"));
  if (login_in_flight_) return refuse(FailedPrecondition("a login for account " + account_.name + " is under way"));
  if (account_.two_factor == TwoFactor::kPrompt) {
    if (passcode.empty()) return refuse(InvalidArgument("account " + account_.name + " needs a two-factor passcode"));
    BeginLoginLocked(LoginKind::kOperator, std::move(passcode), std::move(done));
    return;
  }
  // The operator may have fixed the password file: read it again.
  auto password = ReadSecretFile(account_.password_file);
  if (!password.ok()) return refuse(FailedPrecondition(password.status().message()));
  password_ = std::move(password).value();
  BeginLoginLocked(LoginKind::kOperator, Secret(), std::move(done));
}

void AccountSession::BeginLoginLocked(LoginKind kind, Secret passcode, std::function<void(Status)> done) {
  if (stopped_) return;
  if (login_in_flight_) {
    if (done) DeferLocked([done] { done(FailedPrecondition("a login is already under way")); });
    return;
  }
  login_in_flight_ = true;
  if (current_ && state_ == AccountState::kActive) SetStateLocked(AccountState::kRefreshing, "");
  SendLoginLocked(kind, std::move(passcode), std::move(done));
}

void AccountSession::SendLoginLocked(LoginKind kind, Secret passcode, std::function<void(Status)> done) {
  if (stopped_) return;
  if (account_.two_factor == TwoFactor::kTotp) {
    auto wall_ms = std::chrono::duration_cast<milliseconds>(scheduler_.WallNow().time_since_epoch()).count();
    int64_t step = TotpStep(wall_ms / 1000);
    if (step <= last_totp_step_) {
      // Each passcode is good for one login: wait for the next step.
      int64_t wait_ms = (last_totp_step_ + 1) * kTotpStepSeconds * 1000 - wall_ms + 100;
      spdlog::info("account {}: waiting {} ms for a fresh two-factor step", account_.name, wait_ms);
      retry_timer_ = AtLocked(scheduler_.Now() + milliseconds(wait_ms), [kind, done](AccountSession& s) {
        s.retry_timer_.reset();
        s.SendLoginLocked(kind, Secret(), done);
      });
      return;
    }
    last_totp_step_ = step;
    PersistLocked();  // a crash now must not lead to the same step being used again
    passcode = Secret(TotpCode(account_.totp_key.Reveal(), step));
  }
  auto sent_at = scheduler_.Now();
  nlohmann::json params = {{"timeout", account_.token_timeout.count() / 1000}};
  if (kind != LoginKind::kRenewal) spdlog::info("account {}: logging in as {}", account_.name, account_.username);
  auto self = shared_from_this();
  auto shared_passcode = std::make_shared<Secret>(std::move(passcode));
  auto password = std::make_shared<Secret>(password_.Clone());
  DeferLocked([self, kind, sent_at, params, shared_passcode, password, done] {
    const Secret* code = shared_passcode->empty() ? nullptr : shared_passcode.get();
    self->upstream_.Call(kTokenMethod, params, {self->account_.username, *password, code},
                         [self, kind, sent_at, done](Result<StormReply> reply) {
                           self->OnLoginReply(kind, sent_at, done, std::move(reply));
                         });
  });
}

void AccountSession::OnLoginReply(LoginKind kind, Clock::time_point sent_at, std::function<void(Status)> done,
                                  Result<StormReply> reply) {
  Guard guard(*this);
  login_in_flight_ = false;
  auto tell = [&](Status status) {
    if (done) DeferLocked([done, status] { done(status); });
  };
  if (stopped_) return tell(Unavailable("the broker is shutting down"));

  auto slot = std::make_shared<Slot>();
  slot->hard_deadline = sent_at + account_.max_lifetime;
  Status failure;
  bool permanent = false;
  if (!reply.ok()) {
    failure = reply.status();
  } else if (reply->outcome.is_error) {
    permanent = !IsTransientFailure(reply->outcome.error);
    failure = Unavailable(Describe(reply->outcome.error));
  } else {
    failure = ReadTokenReplyLocked(sent_at, *reply, slot.get());
  }

  if (failure.ok()) {
    slot->generation = next_generation_++;
    failures_in_a_row_ = 0;
    last_error_.clear();
    warning_.clear();
    if (current_) RetireLocked(current_);
    current_ = slot;
    SetStateLocked(AccountState::kActive, kind == LoginKind::kRenewal ? "token renewed" : "token obtained");
    ScheduleTimersLocked();
    PersistLocked();
    LeaseWaitersLocked(slot);
    return tell(Status::Ok());
  }

  last_error_ = failure.message();
  std::vector<LeaseCallback> waiters;
  waiters.swap(waiters_);
  Status for_waiters;
  if (account_.two_factor == TwoFactor::kPrompt) {
    // A passcode is single-use and short-lived: never retried by the daemon.
    spdlog::warn("account {}: two-factor login failed: {}", account_.name, last_error_);
    if (!current_) SetStateLocked(AccountState::kNeedsPasscode, "two-factor login failed: " + last_error_);
    for_waiters = NeedsLoginLocked();
    tell(permanent ? InvalidArgument("the Storm API refused the login of account " + account_.name + ": " +
                                     last_error_ + "; wait for the next passcode and run stormctl login " +
                                     account_.name + " again")
                   : Unavailable("login of account " + account_.name + " failed: " + last_error_));
  } else if (permanent) {
    // Retrying refused credentials can lock the account: stop and say so. A
    // token still held keeps serving until it dies.
    spdlog::error("account {}: login refused: {}; not retrying", account_.name, last_error_);
    if (!current_) SetStateLocked(AccountState::kLoginFailed, "login refused: " + last_error_);
    else SetStateLocked(AccountState::kActive, "renewal refused: " + last_error_ + "; the current token serves until it dies");
    for_waiters = LoginRefusedLocked();
    tell(for_waiters);
  } else {
    auto delay = NextBackoffLocked();
    if (current_) {
      // Never back off past the deadline of the token still serving.
      auto left = current_->hard_deadline - scheduler_.Now();
      delay = std::max<milliseconds>(milliseconds(100),
                                     std::min(delay, std::chrono::duration_cast<milliseconds>(left / 2)));
    } else {
      SetStateLocked(AccountState::kUnreachable, "");
    }
    spdlog::warn("account {}: login failed: {}; retrying in {} ms", account_.name, last_error_, delay.count());
    LoginKind retry_kind = kind == LoginKind::kOperator ? LoginKind::kFirst : kind;
    retry_timer_ = AtLocked(scheduler_.Now() + delay, [retry_kind](AccountSession& s) {
      s.retry_timer_.reset();
      s.BeginLoginLocked(retry_kind);
    });
    for_waiters = Unavailable("account " + account_.name + " has no token: " + last_error_);
    tell(for_waiters);
  }
  DeferLocked([waiters = std::move(waiters), for_waiters] {
    for (auto& waiter : waiters) waiter(for_waiters);
  });
}

void AccountSession::OnCheckReply(Clock::time_point sent_at, Result<StormReply> reply) {
  Guard guard(*this);
  login_in_flight_ = false;
  if (stopped_ || !current_) return;
  bool rejected = reply.ok() && reply->outcome.is_error && IsAuthorizationFailure(reply->outcome.error);
  if (rejected) {
    current_ = nullptr;
    if (CanLogInUnattendedLocked()) {
      SetStateLocked(AccountState::kStarting, "the kept token is no longer valid; logging in");
      BeginLoginLocked(LoginKind::kFirst);  // waiters keep waiting for it
    } else {
      SetStateLocked(AccountState::kNeedsPasscode,
                     "the kept token is no longer valid; run stormctl login " + account_.name);
      std::vector<LeaseCallback> waiters;
      waiters.swap(waiters_);
      DeferLocked([waiters = std::move(waiters), status = NeedsLoginLocked()] {
        for (auto& waiter : waiters) waiter(status);
      });
    }
    PersistLocked();
    return;
  }
  // A fault on the way is no proof the token is dead: keep it, and let the
  // keep-alive schedule try again soon.
  if (reply.ok() && !reply->outcome.is_error) ReadTokenReplyLocked(sent_at, *reply, current_.get());
  SetStateLocked(AccountState::kActive, "reusing the token kept from the last run");
  ScheduleTimersLocked();
  PersistLocked();
  LeaseWaitersLocked(current_);
}

Status AccountSession::ReadTokenReplyLocked(Clock::time_point sent_at, const StormReply& reply, Slot* slot) const {
  const nlohmann::json& result = reply.outcome.result;
  if (!result.is_object() || !result.contains("token") || !result["token"].is_string() ||
      result["token"].get_ref<const std::string&>().empty() || !result.contains("expires") ||
      !result["expires"].is_number()) {
    return Unavailable("the Storm API answered " + std::string(kTokenMethod) + " without a token and expiry time");
  }
  // Count from when we sent the request (the server started its clock no
  // earlier), on our own clock. `expires` is the server's wall clock: read
  // against the server's own Date header it says how long was granted, with
  // no clock skew between us.
  milliseconds asked = account_.token_timeout;
  int64_t expires = result["expires"].get<int64_t>();
  int64_t server_now = reply.server_time.value_or(EpochSeconds(scheduler_.WallNow()));
  milliseconds granted = std::min(asked, milliseconds(std::max<int64_t>(0, expires - server_now) * 1000));
  slot->inactivity_deadline = sent_at + granted;
  // Granted clearly less than asked: the server's hard limit is nearer than ours.
  if (granted + seconds(2) < asked) slot->hard_deadline = std::min(slot->hard_deadline, sent_at + granted);
  const std::string& token = result["token"].get_ref<const std::string&>();
  if (slot->token.Reveal() != token) slot->token = Secret(token);
  return Status::Ok();
}

// ---------------------------------------------------------------- keep-alive, renewal

void AccountSession::KeepAlive() {
  Guard guard(*this);
  if (stopped_ || !current_) return;
  auto sent_at = scheduler_.Now();
  auto slot = current_;
  nlohmann::json params = {{"timeout", account_.token_timeout.count() / 1000}};
  auto self = shared_from_this();
  DeferLocked([self, slot, sent_at, params] {
    self->upstream_.Call(kTokenMethod, params, {self->account_.username, slot->token},
                         [self, sent_at, generation = slot->generation](Result<StormReply> reply) {
                           self->OnKeepAliveReply(sent_at, generation, std::move(reply));
                         });
  });
}

void AccountSession::OnKeepAliveReply(Clock::time_point sent_at, uint64_t generation, Result<StormReply> reply) {
  if (reply.ok() && reply->outcome.is_error && IsAuthorizationFailure(reply->outcome.error)) {
    TokenRejected(generation);
    return;
  }
  Guard guard(*this);
  if (stopped_ || !current_ || current_->generation != generation) return;
  Status status = !reply.ok()                  ? reply.status()
                  : reply->outcome.is_error    ? Unavailable(Describe(reply->outcome.error))
                                               : ReadTokenReplyLocked(sent_at, *reply, current_.get());
  if (status.ok()) {
    failures_in_a_row_ = 0;
    ScheduleTimersLocked();
    PersistLocked();
    return;
  }
  // The token still works until its deadline: try again soon, well before it.
  last_error_ = status.message();
  auto now = scheduler_.Now();
  auto delay = std::min<Clock::duration>(NextBackoffLocked(), (current_->inactivity_deadline - now) / 3);
  spdlog::warn("account {}: keep-alive failed: {}; retrying", account_.name, last_error_);
  timers_.push_back(AtLocked(now + std::max<Clock::duration>(delay, milliseconds(50)),
                             [](AccountSession& s) { s.DeferLocked([&s] { s.KeepAlive(); }); }));
}

void AccountSession::Renew() {
  Guard guard(*this);
  if (stopped_ || !current_) return;
  spdlog::info("account {}: obtaining a new token before the hard limit", account_.name);
  BeginLoginLocked(LoginKind::kRenewal);
}

void AccountSession::HardDeadlineReached(uint64_t generation) {
  Guard guard(*this);
  if (stopped_ || !current_ || current_->generation != generation) return;
  if (CanLogInUnattendedLocked()) {
    DropTokenLocked(login_in_flight_ ? AccountState::kStarting : AccountState::kUnreachable,
                    "the token reached its hard limit before a replacement was obtained");
    BeginLoginLocked(LoginKind::kFirst);
  } else {
    DropTokenLocked(AccountState::kNeedsPasscode,
                    "the token reached its hard limit; run stormctl login " + account_.name);
  }
}

void AccountSession::Warn(std::chrono::minutes before) {
  Guard guard(*this);
  if (stopped_ || !current_) return;
  warning_ = "the token of account " + account_.name + " expires in " + std::to_string(before.count()) +
             " min: run stormctl login " + account_.name;
  spdlog::warn("{}", warning_);
  SetStateLocked(state_, warning_);
}

void AccountSession::Logout(std::function<void(Status)> done) {
  Guard guard(*this);
  if (!current_) {
    DeferLocked([done, name = account_.name] { done(FailedPrecondition("account " + name + " holds no token")); });
    return;
  }
  auto slot = current_;
  DropTokenLocked(CanLogInUnattendedLocked() ? AccountState::kStarting : AccountState::kNeedsPasscode,
                  "logged out by an operator");
  auto self = shared_from_this();
  DeferLocked([self, slot, done] { self->ExpireUpstream(slot, done); });
}

void AccountSession::ExpireUpstream(std::shared_ptr<Slot> slot, std::function<void(Status)> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::erase(retiring_, slot);
  }
  auto self = shared_from_this();
  upstream_.Call(kExpireMethod, nlohmann::json::object(), {account_.username, slot->token},
                 [self, slot, done](Result<StormReply> reply) {
                   Status status;
                   if (!reply.ok()) status = reply.status();
                   else if (reply->outcome.is_error) status = Unavailable(Describe(reply->outcome.error));
                   if (status.ok()) spdlog::info("account {}: expired a token upstream", self->account_.name);
                   else spdlog::warn("account {}: could not expire a token upstream: {}", self->account_.name, status.message());
                   if (done) done(status);
                 });
}

// ---------------------------------------------------------------- helpers

void AccountSession::RetireLocked(std::shared_ptr<Slot> slot) {
  slot->retired = true;
  if (slot->in_flight == 0) {
    auto self = shared_from_this();
    DeferLocked([self, slot] { self->ExpireUpstream(slot); });
  } else {
    retiring_.push_back(std::move(slot));  // expired by Release when its last call ends
  }
}

void AccountSession::DropTokenLocked(AccountState next, const std::string& why) {
  current_ = nullptr;
  renew_at_.reset();
  warning_.clear();
  CancelTimersLocked();
  SetStateLocked(next, why);
  PersistLocked();
}

void AccountSession::ScheduleTimersLocked() {
  CancelTimersLocked();
  renew_at_.reset();
  if (!current_) return;
  auto now = scheduler_.Now();
  auto slot = current_;
  auto keep_alive_at = now + Scaled(slot->inactivity_deadline - now, Jitter(0.45, 0.55));
  Clock::time_point stop_keeping_alive = slot->hard_deadline;
  if (CanLogInUnattendedLocked()) {
    // Make before break: the replacement comes renew_before ahead of the limit
    // (a little earlier, at random, so accounts do not renew in lockstep).
    Clock::time_point renew_at = std::max(now, slot->hard_deadline - Scaled(account_.renew_before, Jitter(1.0, 1.1)));
    renew_at_ = renew_at;
    stop_keeping_alive = renew_at;
    timers_.push_back(AtLocked(renew_at, [](AccountSession& s) { s.DeferLocked([&s] { s.Renew(); }); }));
  } else {
    for (auto before : kWarnings) {
      if (slot->hard_deadline - before > now) {
        timers_.push_back(AtLocked(slot->hard_deadline - before,
                                   [before](AccountSession& s) { s.DeferLocked([&s, before] { s.Warn(before); }); }));
      }
    }
  }
  if (keep_alive_at < stop_keeping_alive) {
    timers_.push_back(AtLocked(keep_alive_at, [](AccountSession& s) { s.DeferLocked([&s] { s.KeepAlive(); }); }));
  }
  timers_.push_back(AtLocked(slot->hard_deadline, [generation = slot->generation](AccountSession& s) {
    s.DeferLocked([&s, generation] { s.HardDeadlineReached(generation); });
  }));
}

void AccountSession::CancelTimersLocked() {
  for (auto id : timers_) scheduler_.Cancel(id);
  timers_.clear();
}

Scheduler::TaskId AccountSession::AtLocked(Clock::time_point when, std::function<void(AccountSession&)> task) {
  std::weak_ptr<AccountSession> weak = weak_from_this();
  return scheduler_.RunAt(when, [weak, task = std::move(task)] {
    if (auto self = weak.lock()) {
      Guard guard(*self);
      if (!self->stopped_) task(*self);
    }
  });
}

std::chrono::milliseconds AccountSession::NextBackoffLocked() {
  int exponent = std::min(failures_in_a_row_++, 6);
  auto base = std::min<milliseconds>(milliseconds(1000LL << exponent), kMaxBackoff);
  return milliseconds(static_cast<long long>(base.count() * Jitter(0.5, 1.0)));
}

void AccountSession::SetStateLocked(AccountState state, const std::string& message) {
  bool changed = state != state_;
  state_ = state;
  if (!changed && message.empty()) return;
  if (!message.empty()) spdlog::info("account {}: {}", account_.name, message);
  if (events_) {
    events_->Publish({account_.name, state, message.empty() ? AccountStateName(state) : message, scheduler_.WallNow()});
  }
}

void AccountSession::PersistLocked() {
  if (!store_) return;
  PersistedToken state;
  state.username = account_.username;
  state.last_totp_step = last_totp_step_;
  if (current_) {
    state.token = current_->token.Clone();
    state.hard_deadline = EpochSeconds(ToWall(current_->hard_deadline));
    state.inactivity_deadline = EpochSeconds(ToWall(current_->inactivity_deadline));
  }
  if (Status saved = store_->Save(account_.name, state); !saved.ok()) {
    // Not fatal: the token serves from memory; only a restart would cost a login.
    spdlog::error("account {}: cannot keep the token for a restart: {}", account_.name, saved.message());
  }
}

Status AccountSession::NeedsLoginLocked() const {
  std::string text = "account " + account_.name + " needs a two-factor login: an administrator runs `stormctl login " +
                     account_.name + "`";
  if (!last_error_.empty()) text += " (last attempt: " + last_error_ + ")";
  return FailedPrecondition(text);
}

Status AccountSession::LoginRefusedLocked() const {
  return FailedPrecondition("account " + account_.name + ": the Storm API refused the login of user " +
                            account_.username + " (" + last_error_ +
                            "); fix the password file, then run `stormctl login " + account_.name +
                            "` or restart stormbrokerd");
}

std::chrono::system_clock::time_point AccountSession::ToWall(Clock::time_point t) const {
  return scheduler_.WallNow() + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - scheduler_.Now());
}

AccountSnapshot AccountSession::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  AccountSnapshot snapshot;
  snapshot.name = account_.name;
  snapshot.username = account_.username;
  snapshot.two_factor = account_.two_factor;
  snapshot.state = state_;
  snapshot.last_error = last_error_;
  snapshot.warning = warning_;
  if (current_) {
    snapshot.inactivity_deadline = ToWall(current_->inactivity_deadline);
    snapshot.hard_deadline = ToWall(current_->hard_deadline);
    if (renew_at_) snapshot.renew_at = ToWall(*renew_at_);
  }
  return snapshot;
}

Result<Secret> AccountSession::CurrentToken() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!current_ || state_ == AccountState::kStarting) {
    return FailedPrecondition("account " + account_.name + " holds no token now (" + AccountStateName(state_) + ")");
  }
  return current_->token.Clone();
}

}  // namespace stormbroker
