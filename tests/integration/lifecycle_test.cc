// The token lifecycle end to end: the real daemon against the real emulator,
// with lifetimes of seconds.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr const char* kPassword = "lifecycle-pw-5150";
constexpr const char* kTotpSecret = "JBSWY3DPEHPK3PXP";

// The current passcode, from oathtool; waits out the end of a step so the
// code is still current when it arrives.
std::string CurrentPasscode() {
  while (std::time(nullptr) % 30 >= 26) std::this_thread::sleep_for(200ms);
  auto result = RunCommand({"/usr/bin/oathtool", "--totp", "-b", kTotpSecret});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return result.out.substr(0, 6);
}

class LifecycleTest : public harness::BrokerTest {
 protected:
  void StartStorm(const std::string& totp_secret = "", std::vector<std::string> flags = {}) {
    BrokerTest::StartStorm(kPassword, totp_secret, std::move(flags));
  }
  // A config whose tokens idle out after `token_timeout`, live `max_lifetime`
  // and are replaced `renew_before` that.
  YAML::Node ShortLived(const std::string& token_timeout, const std::string& max_lifetime = "",
                        const std::string& renew_before = "") const {
    YAML::Node config = Config();
    YAML::Node prod = config["accounts"]["prod"];
    prod["token_timeout"] = token_timeout;
    if (!max_lifetime.empty()) prod["max_lifetime"] = max_lifetime;
    if (!renew_before.empty()) prod["renew_before"] = renew_before;
    return config;
  }
  YAML::Node Prompt() const {
    YAML::Node config = Config();
    config["accounts"]["prod"]["two_factor"] = "prompt";
    return config;
  }
};

TEST_F(LifecycleTest, EightClientsAcrossRenewalsSeeNoFailure) {
  StartStorm("", {"--hard-limit", "6"});
  StartBroker(ShortLived("3s", "6s", "2s"));
  std::atomic<int> ok{0};
  auto failures = harness::Hammer(*broker_, 8, 14s, &ok);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed calls, first: " << failures.front();
  EXPECT_GT(ok.load(), 100);
  std::this_thread::sleep_for(500ms);  // the last replaced token's expiry
  long long logins = storm_->Count("account/auth/token", "password");
  EXPECT_GE(logins, 3) << "at least two renewals in 14 s with a 6 s limit";
  EXPECT_LE(logins, 5);
  EXPECT_EQ(storm_->Count("account/auth/expiretoken", "token"), logins - 1) << "every replaced token expired upstream";
  EXPECT_EQ(storm_->Tokens().size(), 1u) << storm_->Tokens().dump();
  EXPECT_EQ(storm_->Counters()["auth"]["rejected"], 0);
}

TEST_F(LifecycleTest, TwoHundredClientsAtAColdStartCauseOneLogin) {
  StartStorm();
  // Hold the first login long enough for every client to arrive while it runs.
  storm_->Arm(R"({"kind":"delay","delay_ms":3000,"method":"account/auth/token"})");
  broker_ = std::make_unique<harness::Broker>(dir_, Config());
  ASSERT_TRUE(harness::Eventually([&] { return std::filesystem::exists(socket_); }));
  auto login_held_until = std::chrono::steady_clock::now() + 3s;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> finished{0};
  std::mutex mutex;
  std::string first_failure;
  std::vector<std::thread> threads;
  for (int i = 0; i < 200; ++i) {
    threads.emplace_back([&] {
      auto outcome = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
      ++finished;
      (outcome.ok() && !outcome->api_error ? ok : failed)++;
      std::lock_guard<std::mutex> lock(mutex);
      if (!outcome.ok() && first_failure.empty()) first_failure = outcome.error().message;
    });
  }
  // Well before the login can have come back, no call may have ended: each
  // waits for the one login (none failed early, none logged in by itself).
  std::this_thread::sleep_until(login_held_until - 2s);
  EXPECT_EQ(finished.load(), 0) << "calls ended while the only login was still held";
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1);
  EXPECT_EQ(storm_->Counters()["faults"]["delay"], 1);
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 200);
}

TEST_F(LifecycleTest, PromptModeWaitsForStormctlLoginAndReportsAReusedPasscode) {
  StartStorm(kTotpSecret);
  StartBroker(Prompt(), "needs-passcode");
  auto before = Ctl({"call", "Utilities/Info/ping"});
  EXPECT_EQ(before.exit_code, 4) << before.err;
  EXPECT_NE(before.err.find("stormctl login prod"), std::string::npos) << before.err;
  EXPECT_EQ(storm_->Counters()["auth"]["password+passcode"], 0);

  std::string code = CurrentPasscode();
  auto login = Ctl({"login", "prod", "--passcode-stdin"}, code + "\n");
  EXPECT_EQ(login.exit_code, 0) << login.err;
  EXPECT_NE(login.out.find("active"), std::string::npos) << login.out;
  auto after = Ctl({"call", "Utilities/Info/ping"});
  EXPECT_EQ(after.exit_code, 0) << after.err;

  auto logout = Ctl({"logout", "prod"});
  EXPECT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_EQ(storm_->Tokens().size(), 0u) << "logout expires the token upstream";
  auto again = Ctl({"login", "prod", "--passcode-stdin"}, code + "\n");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already used"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("stormctl login prod"), std::string::npos) << again.err;
  EXPECT_EQ(Ctl({"call", "Utilities/Info/ping"}).exit_code, 4);
}

TEST_F(LifecycleTest, LoginAndLogoutNeedAnAdminRule) {
  StartStorm();
  YAML::Node config = Config();
  config["policy"] = YAML::Load(R"([{uids: [65534], accounts: [prod], methods: ["*"]},
                                    {users: [root], accounts: ["*"], methods: ["*"], admin: true}])");
  StartBroker(config);
  auto as_nobody = RunCommand({Binary("stormctl"), "--socket", socket_, "logout", "prod"}, "", std::optional<uid_t>(65534));
  EXPECT_EQ(as_nobody.exit_code, 5) << as_nobody.err;
  EXPECT_NE(as_nobody.err.find("admin: true"), std::string::npos) << as_nobody.err;
  EXPECT_EQ(storm_->Tokens().size(), 1u);
  EXPECT_EQ(Ctl({"logout", "prod"}).exit_code, 0);
  // A password account logs in again by itself on the next call.
  EXPECT_EQ(Ctl({"call", "Utilities/Info/ping"}).exit_code, 0);
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2);
}

TEST_F(LifecycleTest, TotpModeRenewsUnattendedAcrossTheHardLimit) {
  StartStorm(kTotpSecret, {"--hard-limit", "34"});
  std::string secret_file = dir_.Write("totp.secret", std::string(kTotpSecret) + "\n", 0600);
  YAML::Node config = ShortLived("20s", "34s", "4s");
  config["accounts"]["prod"]["two_factor"] = "totp";
  config["accounts"]["prod"]["totp_secret_file"] = secret_file;
  StartBroker(config);
  std::atomic<int> ok{0};
  auto failures = harness::Hammer(*broker_, 2, 40s, &ok);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed calls, first: " << failures.front();
  EXPECT_GE(storm_->Counters()["auth"]["password+passcode"], 2) << "renewed across the 34 s limit";
  EXPECT_EQ(storm_->Counters()["auth"]["password"], 0);
  EXPECT_EQ(storm_->Counters()["auth"]["rejected"], 0) << "no passcode was refused (no step reused)";
}

TEST_F(LifecycleTest, FaultsDuringKeepAliveAreInvisibleToCallers) {
  StartStorm();
  StartBroker(ShortLived("3s"));
  storm_->Arm(R"({"kind":"status500","count":3,"method":"account/auth/token"})");
  storm_->Arm(R"({"kind":"delay","delay_ms":400,"count":3,"method":"account/auth/token"})");
  storm_->Arm(R"({"kind":"maintenance","count":2,"method":"account/auth/token"})");
  // Keep calling until every armed fault has hit a keep-alive.
  std::atomic<int> ok{0};
  std::vector<std::string> failures;
  for (int round = 0; round < 20 && !storm_->Control("GET", "/faults").empty(); ++round) {
    auto more = harness::Hammer(*broker_, 4, 2s, &ok);
    failures.insert(failures.end(), more.begin(), more.end());
  }
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed calls, first: " << failures.front();
  auto counters = storm_->Counters();
  EXPECT_EQ(counters["faults"]["status500"], 3) << counters.dump();
  EXPECT_EQ(counters["faults"]["maintenance"], 2) << counters.dump();
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "the token lived through the faults";
}

TEST_F(LifecycleTest, KillNineAndRestartReusesThePersistedTokenWithoutAPasscode) {
  StartStorm(kTotpSecret);
  std::string state_dir = dir_.path() + "/state";
  YAML::Node config = Prompt();
  config["state_dir"] = state_dir;
  StartBroker(config, "needs-passcode");
  ASSERT_EQ(Ctl({"login", "prod", "--passcode-stdin"}, CurrentPasscode() + "\n").exit_code, 0);
  ASSERT_EQ(Ctl({"call", "Utilities/Info/ping"}).exit_code, 0);
  struct stat st {};
  ASSERT_EQ(stat((state_dir + "/prod.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  broker_->process().Stop(SIGKILL);
  StartBroker(config);
  auto call = Ctl({"call", "Utilities/Info/ping"});
  EXPECT_EQ(call.exit_code, 0) << call.err;
  EXPECT_EQ(storm_->Counters()["auth"]["password+passcode"], 1) << "no new login after the restart";
  EXPECT_NE(broker_->Log().find("serving with the token kept from the last run"), std::string::npos);
  // A two-factor account keeps its token over a clean stop too.
  EXPECT_EQ(broker_->process().Stop(SIGTERM), 0);
  EXPECT_EQ(storm_->Tokens().size(), 1u);
}

TEST_F(LifecycleTest, ALibraryClientOfAKilledBrokerCallsTheNextOneAgainWithoutAnError) {
  StartStorm();
  YAML::Node config = Config();
  config["state_dir"] = dir_.path() + "/state";
  StartBroker(config);
  auto client = broker_->Connect();
  ASSERT_TRUE(client->Call("prod", "Utilities/Info/ping", {}).ok());
  broker_->process().Stop(SIGKILL);
  StartBroker(config);
  // A gRPC client that writes its next call into the dead connection fails
  // it ("Broken pipe", as Python's grpcio does); the library's goes through.
  auto call = client->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(call.ok()) << call.error().message;
  EXPECT_EQ(call->result["ping"], "success");
}

TEST_F(LifecycleTest, CleanStopExpiresAPasswordAccountsToken) {
  StartStorm();
  StartBroker();
  ASSERT_EQ(storm_->Tokens().size(), 1u);
  EXPECT_EQ(broker_->process().Stop(SIGTERM), 0);
  EXPECT_EQ(storm_->Tokens().size(), 0u) << "expire_on_shutdown defaults to true without two-factor";
}

TEST_F(LifecycleTest, WatchShowsRenewals) {
  StartStorm("", {"--hard-limit", "4"});
  StartBroker(ShortLived("3s", "4s", "2s"));
  auto watch = Ctl({"watch", "--count", "2", "--output", "json"});
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_NE(watch.out.find("\"message\":\"token renewed\""), std::string::npos) << watch.out;
  EXPECT_NE(watch.out.find("\"account\":\"prod\""), std::string::npos) << watch.out;
  auto accounts = Ctl({"accounts"});
  EXPECT_EQ(accounts.exit_code, 0);
  EXPECT_NE(accounts.out.find("RENEWS-IN"), std::string::npos) << accounts.out;
}

}  // namespace
