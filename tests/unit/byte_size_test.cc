#include "config/byte_size.h"

#include <gtest/gtest.h>

#include <algorithm>

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

namespace stormbroker {
namespace {

TEST(ByteSizeTest, FormatsInTheLargestWholeUnit) {
  EXPECT_EQ(FormatByteSize(64 << 10), "64 KiB");
  EXPECT_EQ(FormatByteSize(1 << 20), "1 MiB");
  EXPECT_EQ(FormatByteSize(size_t{3} << 30), "3 GiB");
  EXPECT_EQ(FormatByteSize(1536), "1536 bytes");
  EXPECT_EQ(FormatByteSize(0), "0 bytes");
  for (size_t size : {size_t{4096}, size_t{1} << 20, size_t{65536} * 3}) {
    std::string text = FormatByteSize(size);
    text.erase(std::remove(text.begin(), text.end(), ' '), text.end());
    if (text.ends_with("bytes")) text.resize(text.size() - 5);
    EXPECT_EQ(*ParseByteSize(text), size) << "reads back: " << text;
  }
}

}  // namespace
}  // namespace stormbroker
