#include "secret/secret.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace stormbroker {
namespace {

// A file holding `content` with permission bits `mode`.
std::string SecretFile(const std::string& name, const std::string& content, mode_t mode = 0600) {
  std::string path = ::testing::TempDir() + "/" + name;
  unlink(path.c_str());
  std::ofstream(path) << content;
  chmod(path.c_str(), mode);
  return path;
}

TEST(SecretTest, ReadsFileWithoutTrailingNewline) {
  std::string path = SecretFile("secret-test", "p4ss\n");
  auto secret = ReadSecretFile(path);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->Reveal(), "p4ss");
  std::ofstream(path) << "crlf\r\n";
  EXPECT_EQ(ReadSecretFile(path)->Reveal(), "crlf");
}

TEST(SecretTest, ErrorsNameThePathNeverTheContent) {
  std::string path = SecretFile("secret-empty", "\n");
  auto empty = ReadSecretFile(path);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find(path), std::string::npos);
  auto missing = ReadSecretFile(path + "-missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("No such file"), std::string::npos);
}

TEST(SecretTest, RefusesFilesOthersCanReadOrWriteAndWhatIsNotAFile) {
  for (mode_t mode : {0604, 0602, 0620, 0666}) {
    std::string path = SecretFile("secret-open", "p4ss", mode);
    auto secret = ReadSecretFile(path);
    ASSERT_FALSE(secret.ok()) << std::oct << mode;
    EXPECT_NE(secret.status().message().find("chmod go-w,o-r " + path), std::string::npos) << secret.status().message();
    EXPECT_EQ(secret.status().message().find("p4ss"), std::string::npos);
  }
  // A FIFO nobody writes to: refused at once rather than waited on.
  std::string fifo = ::testing::TempDir() + "/secret-fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto from_fifo = ReadSecretFile(fifo);
  ASSERT_FALSE(from_fifo.ok());
  EXPECT_NE(from_fifo.status().message().find("not a regular file"), std::string::npos);
  EXPECT_FALSE(ReadSecretFile(::testing::TempDir()).ok()) << "a directory";
}

TEST(SecretTest, AGroupReadableFileIsReadWithAWarning) {
  std::string path = SecretFile("secret-group", "p4ss", 0640);
  std::string warning;
  auto secret = ReadSecretFile(path, &warning);
  ASSERT_TRUE(secret.ok()) << secret.status().message();
  EXPECT_EQ(secret->Reveal(), "p4ss");
  EXPECT_NE(warning.find("chmod g-r " + path), std::string::npos) << warning;
  warning.clear();
  ASSERT_TRUE(ReadSecretFile(SecretFile("secret-private", "p4ss", 0400), &warning).ok());
  EXPECT_TRUE(warning.empty()) << warning;
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
