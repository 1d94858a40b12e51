// The state directory's token files: kept whole across a restart, and never
// taken from a file the daemon did not write itself.
#include "tokens/token_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace stormbroker {
namespace {

class FileTokenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/sb-store-XXXXXX";
    root_ = mkdtemp(pattern);
    dir_ = root_ + "/state";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  static PersistedToken Token() {
    PersistedToken state;
    state.username = "deploy-bot";
    state.token = Secret("tok-7");
    state.hard_deadline = 1'900'000'000;
    state.inactivity_deadline = 1'899'999'000;
    state.last_totp_step = 42;
    return state;
  }

  std::string root_, dir_;
};

TEST_F(FileTokenStoreTest, ATokenSavedIsLoadedBackWholeFromAPrivateFile) {
  auto store = FileTokenStore::Open(dir_);
  ASSERT_TRUE(store.ok()) << store.status().message();
  struct stat dir {};
  ASSERT_EQ(stat(dir_.c_str(), &dir), 0);
  EXPECT_EQ(dir.st_mode & 0777, 0700u) << "created private";
  ASSERT_TRUE((*store)->Save("prod", Token()).ok());
  struct stat file {};
  ASSERT_EQ(stat((dir_ + "/prod.token").c_str(), &file), 0);
  EXPECT_EQ(file.st_mode & 0777, 0600u);
  auto loaded = (*store)->Load("prod");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->username, "deploy-bot");
  EXPECT_EQ(loaded->token.Reveal(), "tok-7");
  EXPECT_EQ(loaded->hard_deadline, 1'900'000'000);
  EXPECT_EQ(loaded->inactivity_deadline, 1'899'999'000);
  EXPECT_EQ(loaded->last_totp_step, 42);
  EXPECT_FALSE((*store)->Load("staging").has_value()) << "no file, no token";
  ASSERT_TRUE((*store)->Remove("prod").ok());
  EXPECT_FALSE((*store)->Load("prod").has_value());
  EXPECT_TRUE(std::filesystem::is_empty(dir_)) << "no temporary file left behind";
}

TEST_F(FileTokenStoreTest, ADirectoryOthersMayWriteIsRefused) {
  std::filesystem::create_directory(dir_);
  chmod(dir_.c_str(), 0777);
  auto store = FileTokenStore::Open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("chmod"), std::string::npos) << store.status().message();
}

TEST_F(FileTokenStoreTest, AFileTheDaemonDidNotWriteIsNotTaken) {
  auto store = FileTokenStore::Open(dir_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Save("prod", Token()).ok());
  std::string file = dir_ + "/prod.token";
  // Readable by others: refused.
  chmod(file.c_str(), 0644);
  EXPECT_FALSE((*store)->Load("prod").has_value());
  chmod(file.c_str(), 0600);
  ASSERT_TRUE((*store)->Load("prod").has_value());
  // A second link to it (planted elsewhere): refused.
  std::filesystem::create_hard_link(file, root_ + "/planted");
  EXPECT_FALSE((*store)->Load("prod").has_value());
  std::filesystem::remove(root_ + "/planted");
  // A symbolic link in its place: not followed.
  std::filesystem::rename(file, root_ + "/moved");
  std::filesystem::create_symlink(root_ + "/moved", file);
  EXPECT_FALSE((*store)->Load("prod").has_value());
  std::filesystem::remove(file);
  // Garbage: refused, not a crash.
  std::ofstream(file) << "not a token file";
  chmod(file.c_str(), 0600);
  EXPECT_FALSE((*store)->Load("prod").has_value());
}

}  // namespace
}  // namespace stormbroker
