// upstream.keep_warm on a fake clock: pings only within warm_for of a
// caller's call, every interval (or the API's stated keep-alive timeout
// less a margin), `connections` at a time, never for upkeep or its own pings.

#include "upstream/warm_keeper.h"

#include <gtest/gtest.h>

#include "fake_scheduler.h"

namespace stormbroker {
namespace {

using namespace std::chrono_literals;

class WarmKeeperTest : public ::testing::Test {
 protected:
  WarmKeeper::Options Options() const { return {.connections = 2, .warm_for = 10s, .interval = 4s}; }

  static Lane CallersLane() {
    Lane lane;
    lane.account = "prod";
    lane.uid = 1000;
    return lane;
  }

  testing::FakeScheduler scheduler_;
  int pings_ = 0;
};

TEST_F(WarmKeeperTest, NoPingBeforeACallThenEveryIntervalWhileWarm) {
  WarmKeeper keeper(Options(), scheduler_, [&] { ++pings_; });
  scheduler_.Advance(60s);
  EXPECT_EQ(pings_, 0) << "nobody has called";
  EXPECT_FALSE(keeper.connected());
  keeper.Answered(CallersLane(), HttpResponse{});
  EXPECT_TRUE(keeper.connected());
  scheduler_.Advance(3999ms);
  EXPECT_EQ(pings_, 0);
  scheduler_.Advance(1ms);
  EXPECT_EQ(pings_, 2) << "one per connection kept";
  scheduler_.Advance(4s);
  EXPECT_EQ(pings_, 4);
  EXPECT_EQ(keeper.pings(), 4u);
}

TEST_F(WarmKeeperTest, ColdOnceWarmForHasPassedAndWarmAgainAtTheNextCall) {
  WarmKeeper keeper(Options(), scheduler_, [&] { ++pings_; });
  keeper.Answered(CallersLane(), HttpResponse{});
  scheduler_.Advance(60s);
  EXPECT_EQ(pings_, 4) << "at 4 and 8 s; at 12 s the call is 12 s old, past warm_for";
  EXPECT_FALSE(scheduler_.NextDue()) << "nothing scheduled while cold";
  // Its own pings and upkeep keep nothing warm.
  Lane warming = CallersLane();
  warming.warming = true;
  Lane upkeep = CallersLane();
  upkeep.upkeep = true;
  keeper.Answered(warming, HttpResponse{});
  keeper.Answered(upkeep, HttpResponse{});
  scheduler_.Advance(60s);
  EXPECT_EQ(pings_, 4);
  keeper.Answered(CallersLane(), HttpResponse{});
  scheduler_.Advance(4s);
  EXPECT_EQ(pings_, 6) << "a call warms it again";
}

TEST_F(WarmKeeperTest, TheApisStatedTimeoutLessAMarginSetsTheInterval) {
  WarmKeeper keeper(Options(), scheduler_, [&] { ++pings_; });
  HttpResponse stated;
  stated.keep_alive_timeout = 5s;
  keeper.Answered(CallersLane(), stated);
  EXPECT_EQ(keeper.Interval(), 4s) << "5 s less the 1 s margin";
  stated.keep_alive_timeout = 1s;
  keeper.Answered(CallersLane(), stated);
  EXPECT_EQ(keeper.Interval(), 500ms) << "half a short timeout";
}

TEST_F(WarmKeeperTest, NoRoundAfterItIsDestroyed) {
  {
    WarmKeeper keeper(Options(), scheduler_, [&] { ++pings_; });
    keeper.Answered(CallersLane(), HttpResponse{});
  }
  EXPECT_FALSE(scheduler_.NextDue()) << "its timer was cancelled";
  scheduler_.Advance(60s);
  EXPECT_EQ(pings_, 0);
}

}  // namespace
}  // namespace stormbroker
