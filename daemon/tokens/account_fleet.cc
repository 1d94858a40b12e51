// AccountSession: its part in a fleet (fleet/fleet.h) — leading the account,
// or following the token another machine's broker obtains.
#include <spdlog/spdlog.h>

#include "tokens/account_session.h"

namespace stormbroker {

void AccountSession::SetRole(TokenRole role, const std::string& leader) {
  Guard guard(*this);
  if (stopped_) return;
  leader_ = leader;
  if (role == role_) return;
  role_ = role;
  spdlog::info("account {}: this machine is now the {}{}", account_.name, TokenRoleName(role),
               role == TokenRole::kLead || leader.empty() ? "" : " (the leader is " + leader + ")");
  if (role == TokenRole::kLead) {
    if (login_in_flight_) return;  // a check of a kept token: its answer schedules as a leader
    if (pool_.current()) {
      // The token the fleet used so far: one keep-alive confirms it (and
      // publishes its new deadline) and calls go on with it meanwhile; a
      // rejected one costs a login, as any rejected token.
      ScheduleTimersLocked();
      auto self = shared_from_this();
      DeferLocked([self] { self->KeepAlive(); });
    } else if (MayLogInLocked()) {
      BeginLoginLocked(LoginKind::kFirst);
    } else {
      AwaitTokenLocked("");
    }
    return;
  }
  // Another machine leads: no login, renewal or retry of our own.
  if (retry_timer_) {
    scheduler_.Cancel(*retry_timer_);
    retry_timer_.reset();
    login_in_flight_ = false;
  }
  if (pool_.current()) {
    ScheduleTimersLocked();
  } else if (!login_in_flight_) {
    CancelTimersLocked();
    AwaitTokenLocked("");
    FailWaitersLocked(NoTokenLocked());
  }
}

void AccountSession::CheckToken() {
  Guard guard(*this);
  if (stopped_ || role_ != TokenRole::kLead || !pool_.current()) return;
  std::shared_ptr<Slot> slot = pool_.current();
  DeferLocked([self = shared_from_this(), slot] {
    self->ConfirmToken(slot, [self, slot](TokenCheck check) {
      if (check == TokenCheck::kRejected) self->TokenRejected(slot->generation);
    });
  });
}

void AccountSession::Adopt(FleetToken token) {
  Guard guard(*this);
  if (stopped_ || role_ == TokenRole::kLead) return;
  auto wall = scheduler_.WallNow();
  if (token.hard_deadline <= wall || token.inactivity_deadline <= wall) return;
  auto on_our_clock = [&](std::chrono::system_clock::time_point t) {
    return scheduler_.Now() + std::chrono::duration_cast<Clock::duration>(t - wall);
  };
  bool fresh = !pool_.current() || !(pool_.current()->token == token.token);
  if (fresh) {
    // The one it replaces serves the calls already holding it, and is let go.
    auto slot = std::make_shared<Slot>();
    slot->token = std::move(token.token);
    pool_.Install(slot);
  }
  pool_.current()->hard_deadline = on_our_clock(token.hard_deadline);
  pool_.current()->inactivity_deadline = on_our_clock(token.inactivity_deadline);
  last_error_.clear();
  warning_.clear();
  SetStateLocked(AccountState::kActive, fresh ? "using the token of the fleet's leader" +
                                                    (leader_.empty() ? std::string() : " (" + leader_ + ")")
                                              : "");
  ScheduleTimersLocked();
  PersistLocked();
  LeaseWaitersLocked(pool_.current());
}

}  // namespace stormbroker
