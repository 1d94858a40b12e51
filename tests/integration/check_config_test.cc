// stormbrokerd --check-config: exit 0 on a valid file, else FILE:LINE: reason.

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

struct BrokenCase {
  std::string name;
  std::string account_extra;
  std::string top_extra;
  int line;
  std::string says;
};

TEST_F(CheckConfigTest, BrokenConfigsNameFileLineAndReason) {
  const std::vector<BrokenCase> cases = {
      {"bad duration", "    token_timeout: 10 minutes\n", "", 10, "not a duration"},
      {"duration too long", "    token_timeout: 2h\n", "", 10, "between"},
      {"unknown key", "    pasword_file: /x\n", "", 10, "unknown key 'pasword_file'"},
      {"inline password", "    password: hunter2\n", "", 10, "never written in the config"},
      {"unknown top key", "", "extra: 1\n", 14, "unknown key 'extra'"},
      {"yaml syntax", "    token_timeout: [1h\n", "", 11, ""},
      {"unknown user in policy", "", "  - users: [no-such-user-xyz]\n    accounts: [prod]\n    methods: [\"*\"]\n", 14,
       "unknown user 'no-such-user-xyz'"},
      {"policy names a missing account", "", "  - uids: [0]\n    accounts: [staging]\n    methods: [\"*\"]\n", 15,
       "account 'staging'"},
      {"limit per uid above the total", "", "limits:\n  connections: 10\n  connections_per_uid: 20\n", 16,
       "limits.connections_per_uid must not exceed"},
      {"unknown limit", "", "limits:\n  conections: 10\n", 15, "unknown key 'conections' in limits"},
      {"bad size", "", "limits:\n  max_request_size: 1MB\n", 15, "KiB, MiB or GiB"},
      {"relogin interval too short", "    relogin_interval: 0s\n", "", 10, "between"},
  };
  for (const auto& c : cases) {
    auto result = Check(Config(c.account_extra, c.top_extra));
    EXPECT_NE(result.exit_code, 0) << c.name;
    EXPECT_EQ(result.err.rfind(path_ + ":" + std::to_string(c.line) + ": ", 0), 0u)
        << c.name << ": " << result.err;
    EXPECT_NE(result.err.find(c.says), std::string::npos) << c.name << ": " << result.err;
    EXPECT_EQ(result.err.find("hunter2"), std::string::npos) << c.name;
    EXPECT_EQ(result.err.find("secret-value-123"), std::string::npos) << c.name;
  }
}

TEST_F(CheckConfigTest, UpstreamConnectionsAreACountInRange) {
  auto with = [&](const std::string& value) {
    std::string yaml = Config();
    yaml.replace(yaml.find("  timeout: 30s\n"), 14, "  timeout: 30s\n  max_connections: " + value + "\n");
    return Check(yaml);
  };
  EXPECT_EQ(with("16").exit_code, 0) << with("16").err;
  for (const std::string bad : {"0", "1025", "-3", "many", "8.5"}) {
    auto result = with(bad);
    EXPECT_NE(result.exit_code, 0) << bad;
    EXPECT_EQ(result.err.rfind(path_ + ":6: upstream.max_connections must be a number of connections from 1 to 1024", 0),
              0u)
        << bad << ": " << result.err;
  }
}

TEST_F(CheckConfigTest, UnreadablePasswordFileIsNamed) {
  std::string yaml = Config();
  yaml.replace(yaml.find(password_), password_.size(), dir_.path() + "/missing.password");
  auto result = Check(yaml);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find(path_ + ":9: cannot read secret file " + dir_.path() + "/missing.password"),
            std::string::npos)
      << result.err;
}

TEST_F(CheckConfigTest, MissingFileIsReported) {
  auto result = RunCommand({Binary("stormbrokerd"), "--config", dir_.path() + "/nope.yaml", "--check-config"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("nope.yaml: cannot open"), std::string::npos) << result.err;
}

}  // namespace
