#include "tokens/timer_plan.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using Time = Scheduler::Clock::time_point;

const Time kNow = Time() + hours(100);
double Low(double low, double) { return low; }
double High(double, double high) { return high; }

TEST(TimerPlanTest, UnattendedAccountKeepsAliveHalfwayAndRenewsAheadOfTheLimit) {
  TimerPlan plan = PlanTimers(kNow, {kNow + minutes(10), kNow + hours(12)}, /*renews_unattended=*/true, hours(1), Low);
  ASSERT_TRUE(plan.keep_alive_at);
  EXPECT_EQ(*plan.keep_alive_at, kNow + minutes(10) * 0.45);
  ASSERT_TRUE(plan.renew_at);
  EXPECT_EQ(*plan.renew_at, kNow + hours(11));
  EXPECT_TRUE(plan.warnings.empty());
  EXPECT_EQ(plan.hard_deadline, kNow + hours(12));
}

TEST(TimerPlanTest, JitterRenewsUpToATenthEarlierAndKeepsAliveAroundHalfway) {
  TimerPlan plan = PlanTimers(kNow, {kNow + minutes(10), kNow + hours(12)}, true, hours(1), High);
  EXPECT_EQ(*plan.keep_alive_at, kNow + minutes(10) * 0.55);
  EXPECT_EQ(*plan.renew_at, kNow + hours(12) - minutes(66));
}

TEST(TimerPlanTest, NoKeepAliveOnceTheReplacementIsDue) {
  // Renewal comes before the keep-alive would: keeping this token alive is wasted.
  TimerPlan plan = PlanTimers(kNow, {kNow + minutes(10), kNow + minutes(63)}, true, hours(1), Low);
  ASSERT_TRUE(plan.renew_at);
  EXPECT_EQ(*plan.renew_at, kNow + minutes(3));
  EXPECT_FALSE(plan.keep_alive_at);
}

TEST(TimerPlanTest, RenewalAlreadyDueIsNow) {
  TimerPlan plan = PlanTimers(kNow, {kNow + minutes(10), kNow + minutes(30)}, true, hours(1), Low);
  EXPECT_EQ(*plan.renew_at, kNow);
}

TEST(TimerPlanTest, PromptAccountIsWarnedInsteadOfRenewed) {
  TimerPlan plan = PlanTimers(kNow, {kNow + minutes(10), kNow + hours(12)}, /*renews_unattended=*/false, hours(1), Low);
  EXPECT_FALSE(plan.renew_at);
  ASSERT_EQ(plan.warnings.size(), 3u);
  EXPECT_EQ(plan.warnings[0], std::make_pair(kNow + hours(11), minutes(60)));
  EXPECT_EQ(plan.warnings[1], std::make_pair(kNow + hours(12) - minutes(15), minutes(15)));
  EXPECT_EQ(plan.warnings[2], std::make_pair(kNow + hours(12) - minutes(5), minutes(5)));
  EXPECT_TRUE(plan.keep_alive_at);  // kept alive up to the hard limit
}

TEST(TimerPlanTest, WarningsAlreadyPastAreLeftOut) {
  TimerPlan plan = PlanTimers(kNow, {kNow + minutes(10), kNow + minutes(20)}, false, hours(1), Low);
  ASSERT_EQ(plan.warnings.size(), 2u);
  EXPECT_EQ(plan.warnings[0].second, minutes(15));
  EXPECT_EQ(plan.warnings[1].second, minutes(5));
}

}  // namespace
}  // namespace stormbroker
