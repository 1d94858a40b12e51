#include "tokens/timer_plan.h"

#include <algorithm>

namespace stormbroker {
namespace {

constexpr std::chrono::minutes kWarnings[] = {std::chrono::minutes(60), std::chrono::minutes(15),
                                             std::chrono::minutes(5)};

template <typename Duration>
Scheduler::Clock::duration Scaled(Duration d, double factor) {
  return std::chrono::duration_cast<Scheduler::Clock::duration>(d * factor);
}

}  // namespace

TimerPlan PlanTimers(Scheduler::Clock::time_point now, TokenDeadlines deadlines, bool renews_unattended,
                     std::chrono::milliseconds renew_before, const Jitter& jitter) {
  TimerPlan plan;
  plan.hard_deadline = deadlines.hard;
  TimerPlan::Time stop_keeping_alive = deadlines.hard;
  if (renews_unattended) {
    plan.renew_at = std::max(now, deadlines.hard - Scaled(renew_before, jitter(1.0, 1.1)));
    stop_keeping_alive = *plan.renew_at;
  } else {
    for (auto before : kWarnings) {
      if (deadlines.hard - before > now) plan.warnings.emplace_back(deadlines.hard - before, before);
    }
  }
  auto keep_alive_at = now + Scaled(deadlines.inactivity - now, jitter(0.45, 0.55));
  if (keep_alive_at < stop_keeping_alive) plan.keep_alive_at = keep_alive_at;
  return plan;
}

}  // namespace stormbroker
