#include "units/duration.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

using std::chrono::milliseconds;

TEST(DurationTest, AcceptsSecondsAndUnits) {
  EXPECT_EQ(*ParseDuration("90"), milliseconds(90'000));
  EXPECT_EQ(*ParseDuration("30s"), milliseconds(30'000));
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("15m"), milliseconds(900'000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(*ParseDuration("1.5h"), milliseconds(5'400'000));
  EXPECT_EQ(*ParseDuration("0"), milliseconds(0));
}

TEST(DurationTest, RejectsWhatIsNotADuration) {
  for (const char* bad : {"", "s", "1d", "-5s", "1 h", "1.2.3s", "h1", "1hh", "abc", "1e3", "99999999999h"}) {
    auto parsed = ParseDuration(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

}  // namespace
}  // namespace stormbroker
