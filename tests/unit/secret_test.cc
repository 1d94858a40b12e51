#include "secret/secret.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

namespace stormbroker {
namespace {

TEST(SecretTest, ReadsFileWithoutTrailingNewline) {
  std::string path = ::testing::TempDir() + "/secret-test";
  std::ofstream(path) << "p4ss\n";
  auto secret = ReadSecretFile(path);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->Reveal(), "p4ss");
  std::ofstream(path) << "crlf\r\n";
  EXPECT_EQ(ReadSecretFile(path)->Reveal(), "crlf");
}

TEST(SecretTest, ErrorsNameThePathNeverTheContent) {
  std::string path = ::testing::TempDir() + "/secret-empty";
  std::ofstream(path) << "\n";
  auto empty = ReadSecretFile(path);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find(path), std::string::npos);
  auto missing = ReadSecretFile(path + "-missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("No such file"), std::string::npos);
}

TEST(SecretTest, MovesLeaveNothingBehindAndCompareByValue) {
  Secret a("token-value");
  Secret b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT: checking the moved-from state is the point
  EXPECT_EQ(b.Reveal(), "token-value");
  EXPECT_TRUE(b == Secret("token-value"));
  EXPECT_FALSE(b == Secret("token-valuf"));
  EXPECT_FALSE(b == Secret("token"));
  Secret c = b.Clone();
  EXPECT_TRUE(c == b);
}

}  // namespace
}  // namespace stormbroker
