// stormbrokerd --check-config end to end: exit 0 on a valid file, else
// FILE:LINE: reason. The loader's cases are unit tests (config_loader_test.cc).

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;

class CheckConfigTest : public ::testing::Test {
 protected:
  std::string Config(const std::string& account_extra = "", const std::string& top_extra = "") {
    return "listen:\n"
           "  socket: " + dir_.path() + "/broker.sock\n"
           "upstream:\n"
           "  url: https://127.0.0.1:1/v1\n"
           "  timeout: 30s\n"
           "accounts:\n"
           "  prod:\n"
           "    username: deploy-bot\n"
           "    password_file: " + password_ + "\n" + account_extra +
           "policy:\n"
           "  - users: [root]\n"
           "    accounts: [\"*\"]\n"
           "    methods: [\"*\"]\n" + top_extra;
  }
  harness::RunResult Check(const std::string& yaml) {
    path_ = dir_.Write("config.yaml", yaml);
    return RunCommand({Binary("stormbrokerd"), "--config", path_, "--check-config"});
  }

  harness::TempDir dir_;
  std::string password_ = dir_.Write("pw", "secret-value-123\n", 0600);
  std::string path_;
};

TEST_F(CheckConfigTest, ValidConfigPasses) {
  auto result = Check(Config("    token_timeout: 15m\n"));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("OK"), std::string::npos);
}

// Every kind of broken file is a unit test of the loader
// (tests/unit/config_loader_test.cc); this one shows the daemon reports it.
TEST_F(CheckConfigTest, BrokenConfigExitsNonZeroNamingFileAndLine) {
  auto result = Check(Config("    token_timeout: 10 minutes\n"));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err.rfind(path_ + ":10: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find("not a duration"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("secret-value-123"), std::string::npos);
}

TEST_F(CheckConfigTest, MissingFileIsReported) {
  auto result = RunCommand({Binary("stormbrokerd"), "--config", dir_.path() + "/nope.yaml", "--check-config"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("nope.yaml: cannot open"), std::string::npos) << result.err;
}

}  // namespace
