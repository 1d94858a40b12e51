// Secrets stay where they belong. A run with a known password, TOTP secret
// and tokens, then a search through everything the daemon wrote or showed:
// its log, the audit trail, its argv and environment, the state directory
// (a token file, mode 0600, and nothing else), and every error a caller saw.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr const char* kPassword = "leak-pw-Wz9Qx";
constexpr const char* kTotpPassword = "leak-totp-pw-7Hk";
constexpr const char* kTotpSecret = "KRSXG5CTMVRXEZLUKRSXG5CT";

TEST(LeakTest, NoSecretOutsideItsPlace) {
  harness::TempDir dir;
  harness::FakeStorm storm(dir, {{"deploy-bot", kPassword, ""}, {"totp-bot", kTotpPassword, kTotpSecret}});
  std::string socket = dir.path() + "/run/broker.sock";
  std::string state = dir.path() + "/state";
  std::string audit = dir.path() + "/audit.jsonl";
  YAML::Node config = harness::BasicConfig(socket, storm, dir.Write("prod.pw", kPassword, 0600));
  config["state_dir"] = state;
  config["audit"]["file"] = audit;
  YAML::Node totp = config["accounts"]["auto"];
  totp["username"] = "totp-bot";
  totp["password_file"] = dir.Write("totp.pw", kTotpPassword, 0600);
  totp["two_factor"] = "totp";
  totp["totp_secret_file"] = dir.Write("totp.secret", kTotpSecret, 0600);
  harness::Broker broker(dir, config);
  ASSERT_TRUE(broker.WaitForState("active")) << broker.Log();

  ASSERT_EQ(storm.IssuedTokens().size(), 2u);

  // Every kind of answer a caller can get, through stormctl.
  std::string seen_by_callers;
  auto ctl = [&](std::vector<std::string> args, std::optional<uid_t> as = std::nullopt) {
    args.insert(args.begin(), {Binary("stormctl"), "--socket", socket});
    auto result = RunCommand(args, "", as);
    seen_by_callers += result.out + result.err;
  };
  ctl({"call", "--account", "prod", "Utilities/Info/ping", "secret_param=\"PARAM-VALUE-42\""});
  ctl({"call", "--account", "auto", "Storm/Server/details", "uniq_id=NOPE"});
  ctl({"call", "--account", "prod", "../../x"});
  ctl({"call", "--account", "prod", "Utilities/Info/ping"}, uid_t{65534});
  ctl({"token", "auto"}, uid_t{65534});
  ctl({"accounts", "--output", "json"});
  ctl({"status", "--output", "json"});
  ctl({"logout", "prod"});  // a new token on the next call
  ctl({"call", "--account", "prod", "Utilities/Info/ping"});
  storm.Revoke();  // the broker logs in again (a third prod token)
  ctl({"call", "--account", "prod", "Utilities/Info/ping"});
  // Every token the broker ever held, the logged-out and revoked ones too.
  std::vector<std::string> tokens = storm.IssuedTokens();
  EXPECT_GE(tokens.size(), 4u);

  pid_t pid = broker.process().pid();
  std::string argv_and_env = harness::ReadFile("/proc/" + std::to_string(pid) + "/cmdline") +
                             harness::ReadFile("/proc/" + std::to_string(pid) + "/environ");
  ASSERT_EQ(broker.process().Stop(SIGTERM), 0);
  std::string log = broker.Log();
  std::string audit_text = harness::ReadFile(audit);
  ASSERT_FALSE(audit_text.empty());

  std::vector<std::string> secrets = {kPassword, kTotpPassword, kTotpSecret, "PARAM-VALUE-42"};
  secrets.insert(secrets.end(), tokens.begin(), tokens.end());
  for (const auto& secret : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "the daemon's log holds a secret";
    EXPECT_EQ(audit_text.find(secret), std::string::npos) << "the audit trail holds a secret";
    EXPECT_EQ(argv_and_env.find(secret), std::string::npos) << "argv or the environment holds a secret";
    EXPECT_EQ(seen_by_callers.find(secret), std::string::npos) << "a caller saw a secret";
  }

  // The state directory: one token file per account, 0600, and no password.
  for (const auto& entry : std::filesystem::directory_iterator(state)) {
    std::string name = entry.path().filename();
    EXPECT_TRUE(name == "prod.token" || name == "auto.token") << "unexpected file " << name;
    struct stat st {};
    stat(entry.path().c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
    std::string content = harness::ReadFile(entry.path());
    for (const char* secret : {kPassword, kTotpPassword, kTotpSecret}) {
      EXPECT_EQ(content.find(secret), std::string::npos) << name << " holds more than a token";
    }
  }
  // The two-factor account's token is kept (expire_on_shutdown is false for it).
  EXPECT_TRUE(std::filesystem::exists(state + "/auto.token"));
}

}  // namespace
