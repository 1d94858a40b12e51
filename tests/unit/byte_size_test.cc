#include "config/byte_size.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

TEST(ByteSizeTest, AcceptsBytesAndBinaryUnits) {
  EXPECT_EQ(*ParseByteSize("65536"), 65536u);
  EXPECT_EQ(*ParseByteSize("512B"), 512u);
  EXPECT_EQ(*ParseByteSize("64KiB"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("1MiB"), 1u << 20);
  EXPECT_EQ(*ParseByteSize("2GiB"), size_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("0"), 0u);
}

TEST(ByteSizeTest, RejectsWhatIsNotASize) {
  for (const char* bad : {"", "MiB", "1 MiB", "1MB", "1mib", "-1", "1.5MiB", "1KiBB", "9999999999999", "2048GiB"}) {
    auto parsed = ParseByteSize(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace stormbroker
