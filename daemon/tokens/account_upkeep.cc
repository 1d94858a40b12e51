// AccountSession: keeping the token it holds (keep-alive, renewal before the
// hard limit, warnings), retiring replaced tokens, and logging out.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "tokens/account_session.h"
#include "tokens/timer_plan.h"

namespace stormbroker {

using std::chrono::milliseconds;

void AccountSession::SendKeepAliveLocked(const std::shared_ptr<Slot>& slot, KeepAliveReply on_reply) {
  auto sent_at = scheduler_.Now();
  auto self = shared_from_this();
  DeferLocked([self, slot, sent_at, on_reply = std::move(on_reply)] {
    self->upstream_.Call(kTokenMethod, TokenRequestParams(self->account_.token_timeout),
                         {self->account_.username, slot->token},
                         [self, sent_at, on_reply](Result<StormReply> reply) {
                           self->meter_.KeepAlive(self->account_.name, MeterReply(reply));
                           on_reply(*self, sent_at, std::move(reply));
                         },
                         CallOptions{.lane = self->UpkeepLane()});
  });
}

Status AccountSession::TakeGrantLocked(Clock::time_point sent_at, const Result<StormReply>& reply, Slot* slot) const {
  if (Status status = ReplyStatus(reply); !status.ok()) return status;
  // Counted from when we sent the request (the server started its clock no
  // earlier), on our own clock.
  auto grant = ReadTokenGrant(*reply, account_.token_timeout, EpochSeconds(scheduler_.WallNow()));
  if (!grant.ok()) return grant.status();
  slot->inactivity_deadline = sent_at + grant->inactivity;
  if (grant->ends_early) slot->hard_deadline = std::min(slot->hard_deadline, slot->inactivity_deadline);
  if (slot->token.Reveal() != grant->token.Reveal()) slot->token = std::move(grant->token);
  return Status::Ok();
}

void AccountSession::KeepAlive() {
  Guard guard(*this);
  std::shared_ptr<Slot> current = pool_.current();
  if (stopped_ || !current) return;
  SendKeepAliveLocked(current, [generation = current->generation](AccountSession& self, Clock::time_point sent_at,
                                                                   Result<StormReply> reply) {
    self.OnKeepAliveReply(sent_at, generation, std::move(reply));
  });
}

void AccountSession::OnKeepAliveReply(Clock::time_point sent_at, uint64_t generation, Result<StormReply> reply) {
  if (ClassifyReply(reply) == ReplyVerdict::kCredentialRefused) return TokenRejected(generation);
  Guard guard(*this);
  std::shared_ptr<Slot> current = pool_.current();
  if (stopped_ || !current || current->generation != generation) return;
  Status status = TakeGrantLocked(sent_at, reply, current.get());
  if (status.ok()) {
    backoff_.Reset();
    ScheduleTimersLocked();
    PersistLocked();
    return;
  }
  // The token still works until its deadline: try again soon, well before it.
  last_error_ = status.message();
  auto now = scheduler_.Now();
  auto delay = std::min<Clock::duration>(backoff_.Next(), (current->inactivity_deadline - now) / 3);
  spdlog::warn("account {}: keep-alive failed: {}; retrying", account_.name, last_error_);
  timers_.push_back(AtLocked(now + std::max<Clock::duration>(delay, milliseconds(50)),
                             [](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
                               s.DeferLocked([&s] { s.KeepAlive(); });
                             }));
}

void AccountSession::Renew() {
  Guard guard(*this);
  if (stopped_ || !pool_.current()) return;
  spdlog::info("account {}: obtaining a new token before the hard limit", account_.name);
  BeginLoginLocked(LoginKind::kRenewal);
}

void AccountSession::HardDeadlineReached(uint64_t generation) {
  Guard guard(*this);
  if (stopped_ || !pool_.current() || pool_.current()->generation != generation) return;
  if (MayLogInLocked()) {
    DropTokenLocked(login_in_flight_ ? AccountState::kStarting : AccountState::kUnreachable,
                    "the token reached its hard limit before a replacement was obtained");
    BeginLoginLocked(LoginKind::kFirst);
  } else {
    DropTokenLocked(state_, "");
    AwaitTokenLocked("the token reached its hard limit");
  }
}

void AccountSession::Warn(std::chrono::minutes before) {
  Guard guard(*this);
  if (stopped_ || !pool_.current()) return;
  warning_ = "the token of account " + account_.name + " expires in " + std::to_string(before.count()) +
             " min: run stormctl login " + account_.name;
  spdlog::warn("{}", warning_);
  SetStateLocked(state_, warning_);
}

void AccountSession::Logout(std::function<void(Status)> done) {
  Guard guard(*this);
  if (role_ != TokenRole::kLead) {
    DeferLocked([done, name = account_.name, leader = leader_] {
      done(FailedPrecondition("account " + name + " is led by " + (leader.empty() ? "another machine" : leader) +
                              " in the fleet: log out there"));
    });
    return;
  }
  if (!pool_.current()) {
    DeferLocked([done, name = account_.name] { done(FailedPrecondition("account " + name + " holds no token")); });
    return;
  }
  auto slot = pool_.current();
  DropTokenLocked(CanLogInUnattended() ? AccountState::kStarting : AccountState::kNeedsPasscode,
                  "logged out by an operator");
  auto self = shared_from_this();
  DeferLocked([self, slot, done] { self->ExpireUpstream(slot, done); });
}

void AccountSession::ExpireUpstream(std::shared_ptr<Slot> slot, std::function<void(Status)> done) {
  auto self = shared_from_this();
  upstream_.Call(kExpireMethod, nlohmann::json::object(), {account_.username, slot->token},
                 [self, slot, done](Result<StormReply> reply) {
                   Status status = ReplyStatus(reply);
                   if (status.ok()) spdlog::info("account {}: expired a token upstream", self->account_.name);
                   else spdlog::warn("account {}: could not expire a token upstream: {}", self->account_.name, status.message());
                   if (done) done(status);
                 },
                 CallOptions{.lane = UpkeepLane()});
}

void AccountSession::RetireLocked(std::shared_ptr<Slot> slot) {
  if (role_ != TokenRole::kLead) return;  // expiring the fleet's tokens is the leader's job
  if (!fleet_) return RetireNowLocked(std::move(slot));
  // Other machines may start calls with it until they see its successor.
  pool_.Hold(slot);  // so that Stop still expires it
  AtLocked(scheduler_.Now() + fleet_->RetireGrace(), [slot](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
    s.pool_.Forget(slot);
    s.RetireNowLocked(slot);
  });
}

void AccountSession::RetireNowLocked(std::shared_ptr<Slot> slot) {
  if (pool_.Retire(slot)) {  // otherwise Release expires it when its last call ends
    auto self = shared_from_this();
    DeferLocked([self, slot] { self->ExpireUpstream(slot); });
  }
}

void AccountSession::DropTokenLocked(AccountState next, const std::string& why) {
  pool_.TakeCurrent();
  renew_at_.reset();
  warning_.clear();
  CancelTimersLocked();
  SetStateLocked(next, why);
  PersistLocked();
}

void AccountSession::ScheduleTimersLocked() {
  CancelTimersLocked();
  renew_at_.reset();
  std::shared_ptr<Slot> current = pool_.current();
  if (!current) return;
  TimerPlan plan = PlanTimers(scheduler_.Now(), {current->inactivity_deadline, current->hard_deadline},
                              CanLogInUnattended(), account_.renew_before, UniformJitter);
  if (role_ != TokenRole::kLead) {
    // The leader renews; a follower keeps the token alive only when cut off
    // from the fleet (nobody else can be relied on to).
    plan.renew_at.reset();
    if (role_ == TokenRole::kFollow) plan.keep_alive_at.reset();
  }
  // Each timer defers its work until the mutex is released, since that work
  // takes the mutex itself.
  if (plan.renew_at) {
    renew_at_ = plan.renew_at;
    timers_.push_back(AtLocked(*plan.renew_at, [](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
      s.DeferLocked([&s] { s.Renew(); });
    }));
  }
  for (const auto& warning : plan.warnings) {
    std::chrono::minutes before = warning.second;
    timers_.push_back(AtLocked(warning.first, [before](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
      s.DeferLocked([&s, before] { s.Warn(before); });
    }));
  }
  if (plan.keep_alive_at) {
    timers_.push_back(AtLocked(*plan.keep_alive_at, [](AccountSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
      s.DeferLocked([&s] { s.KeepAlive(); });
    }));
  }
  timers_.push_back(
      AtLocked(plan.hard_deadline, [generation = current->generation](AccountSession& s)
                                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mutex_) {
                                         s.DeferLocked([&s, generation] { s.HardDeadlineReached(generation); });
                                       }));
}

void AccountSession::CancelTimersLocked() {
  for (auto id : timers_) scheduler_.Cancel(id);
  timers_.clear();
}

}  // namespace stormbroker
