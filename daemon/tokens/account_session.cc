// AccountSession: start, stop, and the life of a call (a lease on a token,
// the upstream call, and what a refused token costs).
#include "tokens/account_session.h"

#include <algorithm>
#include <atomic>

#include <spdlog/spdlog.h>

#include "tokens/totp.h"

namespace stormbroker {

using std::chrono::milliseconds;
using std::chrono::seconds;

AccountSession::AccountSession(const AccountConfig& account, StormUpstream& upstream, Scheduler& scheduler,
                               TokenStore* store, AccountEventSink* events, AccountMeter* meter, FleetLink* fleet)
    : account_(account.Clone()),
      upstream_(upstream),
      scheduler_(scheduler),
      store_(store),
      events_(events),
      meter_(meter ? *meter : AccountMeter::None()),
      fleet_(fleet),
      password_(account.password.Clone()),
      role_(fleet ? TokenRole::kFollow : TokenRole::kLead) {}

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
        slot->hard_deadline = scheduler_.Now() + seconds(saved->hard_deadline - wall_now);
        slot->inactivity_deadline = scheduler_.Now() + seconds(saved->inactivity_deadline - wall_now);
        // Served at once (a restart must not keep callers waiting for a
        // round trip) and confirmed meanwhile: a token the check finds dead
        // is handled as any rejected token (a login; a call the API refused
        // meanwhile is retried once).
        pool_.Install(slot);
        SetStateLocked(AccountState::kActive, "serving with the token kept from the last run, confirming it");
        ScheduleTimersLocked();
        SendKeepAliveLocked(slot, [generation = slot->generation](AccountSession& self, Clock::time_point sent_at,
                                                                  Result<StormReply> reply) {
          self.OnCheckReply(generation, sent_at, std::move(reply));
        });
        return;
      }
    }
  }
  if (MayLogInLocked()) {
    BeginLoginLocked(LoginKind::kFirst);
  } else {
    AwaitTokenLocked("");
  }
}

void AccountSession::Stop(bool expire_tokens, std::function<void()> done) {
  Guard guard(*this);
  stopped_ = true;
  CancelTimersLocked();
  if (retry_timer_) scheduler_.Cancel(*retry_timer_);
  retry_timer_.reset();
  FailWaitersLocked(Unavailable("the broker is shutting down"));
  std::vector<std::shared_ptr<Slot>> to_expire;
  if (expire_tokens) {
    to_expire = pool_.TakeAll();
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
                          std::optional<Clock::time_point> deadline, std::function<void(Result<ApiOutcome>)> done,
                          const std::string& version, Lane caller) {
  caller.account = account_.name;
  caller.upkeep = false;
  CallWithRetry(method, version, params, deadline, std::move(caller), /*may_retry=*/true, std::move(done));
}

void AccountSession::CallWithRetry(const std::string& method, const std::string& version,
                                   const nlohmann::json& params, std::optional<Clock::time_point> deadline,
                                   Lane lane, bool may_retry, std::function<void(Result<ApiOutcome>)> done) {
  auto self = shared_from_this();
  AcquireToken([self, method, version, params, deadline, lane, may_retry,
                done = std::move(done)](Result<Lease> lease) mutable {
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
    auto sent_at = std::chrono::steady_clock::now();
    self->upstream_.Call(
        method, params, {self->account_.username, lease->token},
        [self, method, version, params, deadline, lane, may_retry, slot, sent_at,
         done = std::move(done)](Result<StormReply> reply) mutable {
          self->meter_.Upstream(self->account_.name, std::chrono::steady_clock::now() - sent_at);
          self->Release(slot);
          if (may_retry && ClassifyReply(reply) == ReplyVerdict::kCredentialRefused) {
            // The API refused our token for this call, so it did not run it.
            // One refusal is no proof the token is dead (a caller must not be
            // able to make the broker drop a good token): ask first.
            auto refused = std::make_shared<ApiOutcome>(std::move(reply->outcome));
            self->ConfirmToken(slot, [self, method, version, params, deadline, lane, slot, refused,
                                      done = std::move(done)](TokenCheck check) mutable {
              if (check == TokenCheck::kUnknown) return done(std::move(*refused));
              if (check == TokenCheck::kRejected) self->TokenRejected(slot->generation);
              self->CallWithRetry(method, version, params, deadline, lane, /*may_retry=*/false, std::move(done));
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
        CallOptions{budget, version, lane});
  });
}

void AccountSession::AcquireToken(LeaseCallback done) {
  Guard guard(*this);
  if (stopped_) return HandOutLocked(std::move(done), Unavailable("the broker is shutting down"));
  if (const auto& current = pool_.current(); current && state_ != AccountState::kStarting) {
    TokenPool::Lease(*current);
    return HandOutLocked(std::move(done), Lease{current, current->token.Clone()});
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
      if (!MayLogInLocked()) return HandOutLocked(std::move(done), NoTokenLocked());
      BeginLoginLocked(LoginKind::kFirst);
      waiters_.push_back(std::move(done));
  }
}

void AccountSession::LeaseWaitersLocked(const std::shared_ptr<Slot>& slot) {
  std::vector<LeaseCallback> waiters;
  waiters.swap(waiters_);
  for (auto& waiter : waiters) {
    TokenPool::Lease(*slot);
    HandOutLocked(std::move(waiter), Lease{slot, slot->token.Clone()});
  }
}

void AccountSession::FailWaitersLocked(const Status& status) {
  std::vector<LeaseCallback> waiters;
  waiters.swap(waiters_);
  DeferLocked([waiters = std::move(waiters), status] {
    for (auto& waiter : waiters) waiter(status);
  });
}

void AccountSession::HandOutLocked(LeaseCallback waiter, Result<Lease> outcome) {
  // std::function needs copyable captures; a Secret is not.
  auto shared = std::make_shared<Result<Lease>>(std::move(outcome));
  DeferLocked([waiter = std::move(waiter), shared] { waiter(std::move(*shared)); });
}

void AccountSession::Release(const std::shared_ptr<Slot>& slot) {
  Guard guard(*this);
  if (pool_.Release(slot) && !stopped_) {
    auto self = shared_from_this();
    DeferLocked([self, slot] { self->ExpireUpstream(slot); });
  }
}

void AccountSession::ConfirmToken(const std::shared_ptr<Slot>& slot, CheckCallback done) {
  Guard guard(*this);
  if (stopped_) return DeferLocked([done] { done(TokenCheck::kUnknown); });
  slot->confirm_waiters.push_back(std::move(done));
  if (slot->confirm_waiters.size() > 1) return;  // one keep-alive answers them all
  SendKeepAliveLocked(slot, [slot](AccountSession& self, Clock::time_point sent_at, Result<StormReply> reply) {
    self.OnConfirmReply(slot, sent_at, std::move(reply));
  });
}

void AccountSession::OnConfirmReply(const std::shared_ptr<Slot>& slot, Clock::time_point sent_at,
                                    Result<StormReply> reply) {
  Guard guard(*this);
  TokenCheck check = TokenCheck::kUnknown;
  ReplyVerdict verdict = ClassifyReply(reply);
  if (verdict == ReplyVerdict::kCredentialRefused) {
    check = TokenCheck::kRejected;
  } else if (verdict == ReplyVerdict::kAnswered && TakeGrantLocked(sent_at, reply, slot.get()).ok()) {
    check = TokenCheck::kAlive;
    spdlog::warn("account {}: the Storm API refused the token for a call, but a keep-alive shows it alive; keeping it",
                 account_.name);
    if (slot == pool_.current()) PersistLocked();
  }
  std::vector<CheckCallback> waiters;
  waiters.swap(slot->confirm_waiters);
  DeferLocked([waiters = std::move(waiters), check] {
    for (auto& waiter : waiters) waiter(check);
  });
}

void AccountSession::TokenRejected(uint64_t generation) {
  Guard guard(*this);
  if (stopped_ || !pool_.current() || pool_.current()->generation != generation) return;
  spdlog::warn("account {}: the Storm API rejected the token", account_.name);
  if (!MayLogInLocked()) {
    if (fleet_ && role_ == TokenRole::kFollow) fleet_->ReportRejected(account_.name);
    DropTokenLocked(state_, "");
    AwaitTokenLocked("the Storm API rejected the token");
    FailWaitersLocked(NoTokenLocked());
    return;
  }
  DropTokenLocked(AccountState::kStarting, "the Storm API rejected the token; logging in again");
  auto now = scheduler_.Now();
  if (last_relogin_ && now < *last_relogin_ + account_.relogin_interval && !login_in_flight_) {
    // Password logins cost the account: a flapping upstream gets at most
    // one per relogin_interval. Calls wait for it as for any login.
    auto at = *last_relogin_ + account_.relogin_interval;
    spdlog::warn("account {}: next login in {} ms (at most one per relogin_interval after a rejected token)",
                 account_.name, std::chrono::duration_cast<milliseconds>(at - now).count());
    login_in_flight_ = true;
    retry_timer_ = AtLocked(at, [](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
      s.retry_timer_.reset();
      s.last_relogin_ = s.scheduler_.Now();
      s.SendLoginLocked(LoginKind::kFirst, Secret(), nullptr);
    });
    return;
  }
  last_relogin_ = now;
  BeginLoginLocked(LoginKind::kFirst);
}

// ---------------------------------------------------------------- shared

Scheduler::TaskId AccountSession::AtLocked(Clock::time_point when, Task task) {
  std::weak_ptr<AccountSession> weak = weak_from_this();
  return scheduler_.RunAt(when, [weak, task = std::move(task)] {
    if (auto self = weak.lock()) {
      Guard guard(*self);
      if (!self->stopped_) task(*self);
    }
  });
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
  std::shared_ptr<Slot> current = pool_.current();
  if (fleet_ && role_ == TokenRole::kLead && current &&
      (state_ == AccountState::kActive || state_ == AccountState::kRefreshing)) {
    fleet_->Publish(account_.name, {current->token.Clone(), ToWall(current->hard_deadline),
                                    ToWall(current->inactivity_deadline)});
  }
  if (!store_) return;
  PersistedToken state;
  state.username = account_.username;
  state.last_totp_step = last_totp_step_;
  if (current) {
    state.token = current->token.Clone();
    state.hard_deadline = EpochSeconds(ToWall(current->hard_deadline));
    state.inactivity_deadline = EpochSeconds(ToWall(current->inactivity_deadline));
  }
  if (Status saved = store_->Save(account_.name, state); !saved.ok()) {
    // Not fatal: the token serves from memory; only a restart would cost a login.
    spdlog::error("account {}: cannot keep the token for a restart: {}", account_.name, saved.message());
  }
}

std::chrono::system_clock::time_point AccountSession::ToWall(Clock::time_point t) const {
  return scheduler_.WallNow() + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - scheduler_.Now());
}

AccountSnapshot AccountSession::SnapshotLocked() const {
  AccountSnapshot snapshot;
  snapshot.name = account_.name;
  snapshot.username = account_.username;
  snapshot.two_factor = account_.two_factor;
  snapshot.state = state_;
  snapshot.last_error = last_error_;
  snapshot.warning = warning_;
  if (fleet_) {
    snapshot.fleet_role = TokenRoleName(role_);
    snapshot.fleet_leader = leader_;
  }
  if (std::shared_ptr<Slot> current = pool_.current()) {
    snapshot.inactivity_deadline = ToWall(current->inactivity_deadline);
    snapshot.hard_deadline = ToWall(current->hard_deadline);
    if (renew_at_) snapshot.renew_at = ToWall(*renew_at_);
  }
  return snapshot;
}

AccountSnapshot AccountSession::Snapshot() const {
  absl::MutexLock lock(&mutex_);
  return SnapshotLocked();
}

Result<HeldToken> AccountSession::CurrentToken() const {
  absl::MutexLock lock(&mutex_);
  if (!pool_.current() || state_ == AccountState::kStarting) {
    return FailedPrecondition("account " + account_.name + " holds no token now (" + AccountStateName(state_) + ")");
  }
  return HeldToken{pool_.current()->token.Clone(), SnapshotLocked()};
}

}  // namespace stormbroker
