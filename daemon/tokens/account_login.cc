// AccountSession: logins (first, renewal, an operator's), the check of a
// token kept from the last run, and what a failed login leads to.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "tokens/account_session.h"
#include "tokens/totp.h"

namespace stormbroker {

using std::chrono::milliseconds;

// No passcode is sent with less than this left of its step.
constexpr int64_t kTotpLastSendMs = 2000;

void AccountSession::Login(Secret passcode, std::function<void(Status)> done) {
  Guard guard(*this);
  auto refuse = [&](Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    DeferLocked([done, status] { done(status); });
  };
  if (stopped_) return refuse(Unavailable("the broker is shutting down"));
  if (role_ != TokenRole::kLead) {
    // Another machine obtains this account's tokens: the login is its to do.
    auto shared_passcode = std::make_shared<Secret>(std::move(passcode));
    DeferLocked([fleet = fleet_, name = account_.name, shared_passcode, done] {
      fleet->ForwardLogin(name, std::move(*shared_passcode), done);
    });
    return;
  }
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
  if (pool_.current() && state_ == AccountState::kActive) SetStateLocked(AccountState::kRefreshing, "");
  SendLoginLocked(kind, std::move(passcode), std::move(done));
}

void AccountSession::SendLoginLocked(LoginKind kind, Secret passcode, std::function<void(Status)> done) {
  if (stopped_) return;
  if (account_.two_factor == TwoFactor::kTotp) {
    auto wall_ms = std::chrono::duration_cast<milliseconds>(scheduler_.WallNow().time_since_epoch()).count();
    int64_t step = TotpStep(wall_ms / 1000);
    // A passcode is good for one login, and only within its own step: one
    // sent in the step's last moments may arrive in the next and be refused,
    // which would stop the account until an operator steps in.
    bool step_ending = (step + 1) * kTotpStepSeconds * 1000 - wall_ms < kTotpLastSendMs;
    if (step <= last_totp_step_ || step_ending) {
      int64_t next = std::max(last_totp_step_ + 1, step_ending ? step + 1 : step);
      int64_t wait_ms = next * kTotpStepSeconds * 1000 - wall_ms + 100;
      spdlog::info("account {}: waiting {} ms for a fresh two-factor step", account_.name, wait_ms);
      retry_timer_ = AtLocked(scheduler_.Now() + milliseconds(wait_ms),
                              [kind, done](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
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
  if (kind != LoginKind::kRenewal) spdlog::info("account {}: logging in as {}", account_.name, account_.username);
  auto self = shared_from_this();
  auto shared_passcode = std::make_shared<Secret>(std::move(passcode));
  auto password = std::make_shared<Secret>(password_.Clone());
  DeferLocked([self, kind, sent_at, shared_passcode, password, done] {
    const Secret* code = shared_passcode->empty() ? nullptr : shared_passcode.get();
    self->upstream_.Call(kTokenMethod, TokenRequestParams(self->account_.token_timeout),
                         {self->account_.username, *password, code},
                         [self, kind, sent_at, done](Result<StormReply> reply) {
                           self->OnLoginReply(kind, sent_at, done, std::move(reply));
                         },
                         CallOptions{.lane = self->UpkeepLane()});
  });
}

void AccountSession::OnLoginReply(LoginKind kind, Clock::time_point sent_at, std::function<void(Status)> done,
                                  Result<StormReply> reply) {
  Guard guard(*this);
  login_in_flight_ = false;
  auto tell = [&](Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (done) DeferLocked([done, status] { done(status); });
  };
  if (stopped_) return tell(Unavailable("the broker is shutting down"));

  auto slot = std::make_shared<Slot>();
  slot->hard_deadline = sent_at + account_.max_lifetime;
  Status taken = TakeGrantLocked(sent_at, reply, slot.get());
  // An answer whose grant could not be read is a failure, not an ok.
  AccountMeter::Reply counted = taken.ok()                                         ? AccountMeter::Reply::kOk
                                : MeterReply(reply) == AccountMeter::Reply::kRefused ? AccountMeter::Reply::kRefused
                                                                                     : AccountMeter::Reply::kFailed;
  meter_.Login(account_.name, LoginCredential(account_.two_factor), kind == LoginKind::kRenewal, counted);
  if (taken.ok()) {
    backoff_.Reset();
    last_error_.clear();
    warning_.clear();
    if (auto replaced = pool_.Install(slot)) RetireLocked(std::move(replaced));
    SetStateLocked(AccountState::kActive, kind == LoginKind::kRenewal ? "token renewed" : "token obtained");
    ScheduleTimersLocked();
    PersistLocked();
    LeaseWaitersLocked(slot);
    return tell(Status::Ok());
  } else {
    last_error_ = taken.message();
  }

  ReplyVerdict verdict = ClassifyReply(reply);
  bool permanent = verdict == ReplyVerdict::kCredentialRefused || verdict == ReplyVerdict::kRefused;
  if (account_.two_factor == TwoFactor::kPrompt) {
    // A passcode is single-use and short-lived: never retried by the daemon.
    spdlog::warn("account {}: two-factor login failed: {}", account_.name, last_error_);
    if (!pool_.current()) SetStateLocked(AccountState::kNeedsPasscode, "two-factor login failed: " + last_error_);
    tell(permanent ? InvalidArgument("the Storm API refused the login of account " + account_.name + ": " +
                                     last_error_ + "; wait for the next passcode and run stormctl login " +
                                     account_.name + " again")
                   : Unavailable("login of account " + account_.name + " failed: " + last_error_));
    return FailWaitersLocked(NeedsLoginLocked());
  }
  if (permanent) {
    // Retrying refused credentials can lock the account: stop and say so. A
    // token still held keeps serving until it dies.
    spdlog::error("account {}: login refused: {}; not retrying", account_.name, last_error_);
    if (!pool_.current()) SetStateLocked(AccountState::kLoginFailed, "login refused: " + last_error_);
    else SetStateLocked(AccountState::kActive, "renewal refused: " + last_error_ + "; the current token serves until it dies");
    tell(LoginRefusedLocked());
    return FailWaitersLocked(LoginRefusedLocked());
  }
  auto delay = backoff_.Next();
  if (std::shared_ptr<Slot> current = pool_.current()) {
    // Never back off past the deadline of the token still serving.
    auto left = current->hard_deadline - scheduler_.Now();
    delay = std::max<milliseconds>(milliseconds(100),
                                   std::min(delay, std::chrono::duration_cast<milliseconds>(left / 2)));
  } else {
    SetStateLocked(AccountState::kUnreachable, "");
  }
  spdlog::warn("account {}: login failed: {}; retrying in {} ms", account_.name, last_error_, delay.count());
  LoginKind retry_kind = kind == LoginKind::kOperator ? LoginKind::kFirst : kind;
  retry_timer_ = AtLocked(scheduler_.Now() + delay, [retry_kind](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
    s.retry_timer_.reset();
    s.BeginLoginLocked(retry_kind);
  });
  Status unavailable = Unavailable("account " + account_.name + " has no token: " + last_error_);
  tell(unavailable);
  FailWaitersLocked(unavailable);
}

void AccountSession::OnCheckReply(uint64_t generation, Clock::time_point sent_at, Result<StormReply> reply) {
  Guard guard(*this);
  // Gone, or replaced meanwhile (a login, a token the fleet's leader published).
  if (stopped_ || !pool_.current() || pool_.current()->generation != generation) return;
  if (ClassifyReply(reply) == ReplyVerdict::kCredentialRefused) {
    spdlog::warn("account {}: the token kept from the last run is no longer valid", account_.name);
    DeferLocked([self = shared_from_this(), generation] { self->TokenRejected(generation); });
    return;
  }
  // A fault on the way is no proof the token is dead: keep it (with its old
  // deadlines when the answer said nothing new), and let the keep-alive
  // schedule try again soon.
  if (TakeGrantLocked(sent_at, reply, pool_.current().get()).ok()) {
    spdlog::info("account {}: the token kept from the last run is confirmed", account_.name);
  }
  ScheduleTimersLocked();
  PersistLocked();
}

Status AccountSession::NeedsLoginLocked() const {
  std::string text = "account " + account_.name + " needs a two-factor login: an administrator runs `stormctl login " +
                     account_.name + "`";
  if (!last_error_.empty()) text += " (last attempt: " + last_error_ + ")";
  return FailedPrecondition(text);
}

Status AccountSession::NoTokenLocked() const {
  if (role_ == TokenRole::kStranded) {
    return FailedPrecondition("account " + account_.name +
                              " has no usable token: this machine is cut off from the fleet's etcd and may not log in "
                              "(another machine may lead the account meanwhile); it rejoins when etcd answers");
  }
  if (!CanLogInUnattended()) return NeedsLoginLocked();
  std::string text = "account " + account_.name + " has no token yet: this machine follows the fleet's leader";
  if (!leader_.empty()) text += " (" + leader_ + ")";
  return Unavailable(text + ", which has not published one");
}

void AccountSession::AwaitTokenLocked(const std::string& why) {
  std::string prefix = why.empty() ? "" : why + "; ";
  if (!CanLogInUnattended()) {
    SetStateLocked(AccountState::kNeedsPasscode,
                   prefix + "waiting for a two-factor login: run stormctl login " + account_.name);
  } else {
    SetStateLocked(AccountState::kStarting, prefix + "waiting for the token of the fleet's leader" +
                                                (leader_.empty() ? "" : " (" + leader_ + ")"));
  }
}

Status AccountSession::LoginRefusedLocked() const {
  return FailedPrecondition("account " + account_.name + ": the Storm API refused the login of user " +
                            account_.username + " (" + last_error_ +
                            "); fix the password file, then run `stormctl login " + account_.name +
                            "` or restart stormbrokerd");
}

}  // namespace stormbroker
