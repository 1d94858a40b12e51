// The make-before-break bookkeeping: which token a call gets, and when a
// replaced one may be expired.
#include "tokens/token_pool.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

std::shared_ptr<TokenPool::Slot> Token(const char* text) {
  auto slot = std::make_shared<TokenPool::Slot>();
  slot->token = Secret(text);
  return slot;
}

TEST(TokenPoolTest, InstallNumbersTokensAndReturnsTheOneReplaced) {
  TokenPool pool;
  EXPECT_EQ(pool.current(), nullptr);
  auto first = Token("first");
  EXPECT_EQ(pool.Install(first), nullptr);
  EXPECT_EQ(pool.current(), first);
  auto second = Token("second");
  EXPECT_EQ(pool.Install(second), first);
  EXPECT_EQ(pool.current(), second);
  EXPECT_LT(first->generation, second->generation);
  EXPECT_GT(first->generation, 0u);
}

TEST(TokenPoolTest, AReplacedTokenServesItsCallsAndIsExpiredAfterTheLast) {
  TokenPool pool;
  auto old_token = Token("old");
  pool.Install(old_token);
  TokenPool::Lease(*old_token);
  TokenPool::Lease(*old_token);
  auto replaced = pool.Install(Token("new"));
  ASSERT_EQ(replaced, old_token);
  EXPECT_FALSE(pool.Retire(replaced)) << "two calls hold it";
  EXPECT_FALSE(pool.Release(old_token)) << "one call still holds it";
  EXPECT_TRUE(pool.Release(old_token)) << "its last call ended: expire it now";
  EXPECT_EQ(pool.TakeAll().size(), 1u) << "only the current token is left to expire at a stop";
}

TEST(TokenPoolTest, AReplacedTokenWithoutCallsIsExpiredAtOnce) {
  TokenPool pool;
  pool.Install(Token("old"));
  EXPECT_TRUE(pool.Retire(pool.Install(Token("new"))));
  ASSERT_EQ(pool.TakeAll().size(), 1u);
}

TEST(TokenPoolTest, TheCurrentTokenIsNeverExpiredByItsCallsEnding) {
  TokenPool pool;
  auto current = Token("current");
  pool.Install(current);
  TokenPool::Lease(*current);
  EXPECT_FALSE(pool.Release(current));
  EXPECT_EQ(pool.current(), current);
}

TEST(TokenPoolTest, AStopFindsEveryTokenHeldOrRetiredWithCalls) {
  TokenPool pool;
  auto busy = Token("busy");  // retired with a call in flight
  pool.Install(busy);
  TokenPool::Lease(*busy);
  EXPECT_FALSE(pool.Retire(pool.Install(Token("held"))));
  auto held = pool.current();  // replaced, in a fleet's grace
  pool.Install(Token("current"));
  pool.Hold(held);
  pool.Hold(held);  // once only
  auto all = pool.TakeAll();
  EXPECT_EQ(all.size(), 3u);
  EXPECT_EQ(pool.current(), nullptr);
  EXPECT_TRUE(pool.TakeAll().empty());
}

TEST(TokenPoolTest, AForgottenTokenIsNoLongerTheStopsToExpire) {
  TokenPool pool;
  auto held = Token("held");
  pool.Hold(held);
  pool.Forget(held);
  EXPECT_TRUE(pool.TakeAll().empty());
}

TEST(TokenPoolTest, TakeCurrentLeavesNoToken) {
  TokenPool pool;
  auto current = Token("current");
  pool.Install(current);
  EXPECT_EQ(pool.TakeCurrent(), current);
  EXPECT_EQ(pool.current(), nullptr);
}

}  // namespace
}  // namespace stormbroker
