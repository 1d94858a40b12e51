#include "tokens/backoff.h"

#include <gtest/gtest.h>

#include <vector>

namespace stormbroker {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesFromOneSecondUpToAMinute) {
  Backoff backoff([](double, double high) { return high; });  // no jitter: the whole step
  std::vector<milliseconds> waits;
  for (int i = 0; i < 9; ++i) waits.push_back(backoff.Next());
  EXPECT_EQ(waits, (std::vector<milliseconds>{milliseconds(1000), milliseconds(2000), milliseconds(4000),
                                             milliseconds(8000), milliseconds(16000), milliseconds(32000),
                                             milliseconds(60000), milliseconds(60000), milliseconds(60000)}));
}

TEST(BackoffTest, JitterTakesBetweenHalfAndAllOfTheStep) {
  double asked_low = 0, asked_high = 0;
  Backoff backoff([&](double low, double high) {
    asked_low = low;
    asked_high = high;
    return low;
  });
  backoff.Next();
  EXPECT_EQ(backoff.Next(), milliseconds(1000));  // half of the 2 s step
  EXPECT_EQ(asked_low, 0.5);
  EXPECT_EQ(asked_high, 1.0);
}

TEST(BackoffTest, ResetStartsOver) {
  Backoff backoff([](double, double high) { return high; });
  backoff.Next();
  backoff.Next();
  backoff.Reset();
  EXPECT_EQ(backoff.Next(), milliseconds(1000));
}

TEST(BackoffTest, UniformJitterStaysInItsRange) {
  for (int i = 0; i < 1000; ++i) {
    double value = UniformJitter(0.5, 1.0);
    ASSERT_GE(value, 0.5);
    ASSERT_LT(value, 1.0);
  }
}

}  // namespace
}  // namespace stormbroker
