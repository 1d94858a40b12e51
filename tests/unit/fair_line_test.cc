// The fair line's order: upkeep first, accounts and uids in turn, shares,
// caps and pauses, and leaving the line.
#include "upstream/fair_line.h"

#include <gtest/gtest.h>

#include <map>

namespace stormbroker {
namespace {

using Clock = std::chrono::steady_clock;
using Line = FairLine<int>;

Lane Caller(const std::string& account, uid_t uid, uint32_t share = 1) {
  Lane lane;
  lane.account = account;
  lane.uid = uid;
  lane.share = share;
  return lane;
}

// Pops everything that may go now, Done-ing each at once; the items in order.
std::vector<int> Drain(Line& line, Clock::time_point now = Clock::now()) {
  std::vector<int> order;
  while (auto entry = line.Pop(now)) {
    order.push_back(entry->item);
    line.Done(entry->lane.account);
  }
  return order;
}

TEST(FairLineTest, OneCallOfAnotherUidWaitsForOneTurnNotForTheBacklog) {
  Line line;
  for (int i = 0; i < 64; ++i) line.Push(Caller("prod", 1000), i);
  line.Push(Caller("prod", 2000), 999);
  auto order = Drain(line);
  ASSERT_EQ(order.size(), 65u);
  EXPECT_EQ(order[1], 999) << "the second uid goes right after the first uid's first call";
}

TEST(FairLineTest, SharesGiveCallsInTheirRatio) {
  Line line;
  for (int i = 0; i < 400; ++i) {
    line.Push(Caller("prod", 1, 3), 1);
    line.Push(Caller("prod", 2, 1), 2);
  }
  std::map<int, int> served;
  for (int i = 0; i < 400; ++i) {
    auto entry = line.Pop(Clock::now());
    ASSERT_TRUE(entry);
    ++served[entry->item];
    line.Done("prod");
  }
  EXPECT_EQ(served[1], 300);
  EXPECT_EQ(served[2], 100);
}

TEST(FairLineTest, UpkeepGoesFirstAndPastAPause) {
  Line line;
  auto now = Clock::now();
  line.Pause("prod", now + std::chrono::seconds(2));
  line.Push(Caller("prod", 1), 1);
  Lane upkeep = Caller("prod", 0);
  upkeep.upkeep = true;
  line.Push(upkeep, 7);
  auto first = line.Pop(now);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->item, 7);
  EXPECT_FALSE(line.Pop(now)) << "the caller's call waits out the pause";
  EXPECT_EQ(line.NextPauseEnd(now), now + std::chrono::seconds(2));
  auto later = line.Pop(now + std::chrono::seconds(2));
  ASSERT_TRUE(later);
  EXPECT_EQ(later->item, 1);
}

TEST(FairLineTest, AnAccountAtItsCapLetsTheOthersGo) {
  Line line;
  line.SetCap("small", 1);
  for (int i = 0; i < 3; ++i) line.Push(Caller("small", 1), 10 + i);
  for (int i = 0; i < 3; ++i) line.Push(Caller("big", 1), 20 + i);
  auto now = Clock::now();
  std::vector<int> order;
  while (auto entry = line.Pop(now)) order.push_back(entry->item);  // none Done: all stay at the API
  EXPECT_EQ(order, (std::vector<int>{10, 20, 21, 22})) << "small holds its one connection";
  EXPECT_EQ(line.AtApi("small"), 1u);
  EXPECT_EQ(line.Waiting("small"), 2u);
  line.Done("small");
  auto next = line.Pop(now);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->item, 11);
}

TEST(FairLineTest, AccountsTakeTurns) {
  Line line;
  for (int i = 0; i < 3; ++i) line.Push(Caller("a", 1), 10 + i);
  for (int i = 0; i < 3; ++i) line.Push(Caller("b", 1), 20 + i);
  EXPECT_EQ(Drain(line), (std::vector<int>{10, 20, 11, 21, 12, 22}));
}

TEST(FairLineTest, ACallPutBackKeepsItsPlace) {
  Line line;
  line.Push(Caller("prod", 1), 1);
  line.Push(Caller("prod", 1), 2);
  auto first = line.Pop(Clock::now());
  ASSERT_TRUE(first);
  line.Done("prod");
  line.PushFront(first->lane, first->item);
  EXPECT_EQ(Drain(line), (std::vector<int>{1, 2}));
}

TEST(FairLineTest, CallersWhoGaveUpLeaveAndTheTurnsGoOn) {
  Line line;
  for (int i = 0; i < 4; ++i) line.Push(Caller("prod", 1), 10 + i);
  for (int i = 0; i < 4; ++i) line.Push(Caller("prod", 2), 20 + i);
  auto gone = line.RemoveIf([](const Line::Entry& entry) { return entry.lane.uid == 1; });
  EXPECT_EQ(gone.size(), 4u);
  EXPECT_EQ(line.size(), 4u);
  EXPECT_EQ(line.Waiting("prod"), 4u);
  EXPECT_EQ(Drain(line), (std::vector<int>{20, 21, 22, 23}));
  EXPECT_EQ(line.size(), 0u);
  line.Push(Caller("prod", 1), 30);
  EXPECT_EQ(Drain(line), (std::vector<int>{30})) << "an emptied account comes back into turn";
}

TEST(FairLineTest, PausesOnlyLengthen) {
  Line line;
  auto now = Clock::now();
  line.Pause("prod", now + std::chrono::seconds(5));
  line.Pause("prod", now + std::chrono::seconds(1));
  EXPECT_EQ(line.PausedUntil("prod", now), now + std::chrono::seconds(5));
  EXPECT_FALSE(line.PausedUntil("prod", now + std::chrono::seconds(5)));
  EXPECT_FALSE(line.PausedUntil("other", now));
}

}  // namespace
}  // namespace stormbroker
