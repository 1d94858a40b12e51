// When a session acts on the token it holds, worked out from the token's two
// deadlines with no state and no clock of its own:
//  - keep-alive about halfway to the inactivity deadline (jittered), and only
//    while the token is worth keeping alive;
//  - accounts that log in unattended (no two-factor, TOTP): the replacement
//    renew_before ahead of the hard limit, a little earlier at random so that
//    accounts do not renew in lockstep (make before break);
//  - prompt accounts (a person must log in): warnings 60, 15 and 5 minutes
//    before the hard limit instead;
//  - the hard limit itself, when the token must be dropped.
#pragma once

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "tokens/backoff.h"
#include "runtime/scheduler.h"

namespace stormbroker {

struct TimerPlan {
  using Time = Scheduler::Clock::time_point;
  std::optional<Time> keep_alive_at;
  std::optional<Time> renew_at;
  std::vector<std::pair<Time, std::chrono::minutes>> warnings;  // when, and how long before the limit
  Time hard_deadline;
};

struct TokenDeadlines {
  Scheduler::Clock::time_point inactivity;
  Scheduler::Clock::time_point hard;
};

TimerPlan PlanTimers(Scheduler::Clock::time_point now, TokenDeadlines deadlines, bool renews_unattended,
                     std::chrono::milliseconds renew_before, const Jitter& jitter);

}  // namespace stormbroker
