// End to end: a local process calls the Storm API through the real daemon,
// over a real Unix socket, against the real emulator over HTTPS.

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <filesystem>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;

constexpr const char* kPassword = "pw-Xq7!correct-horse";
const std::optional<uid_t> kNobody = 65534;

class SkeletonTest : public harness::BrokerTest {
 protected:
  void SetUp() override { StartStorm(kPassword); }

  // Every secret this run produced: the password and every token the
  // emulator ever issued that is still alive.
  std::vector<std::string> Secrets() const {
    std::vector<std::string> secrets = {kPassword};
    for (const auto& token : storm_->Tokens()) secrets.push_back(token["token"].get<std::string>());
    return secrets;
  }

  void ExpectNoSecretIn(const std::string& text, const std::string& where) const {
    for (const auto& secret : Secrets()) {
      EXPECT_EQ(text.find(secret), std::string::npos) << where << " contains a secret";
    }
  }
};

TEST_F(SkeletonTest, PingGoesThroughWithOnePasswordLoginThenOnlyTokens) {
  StartBroker();
  auto client = broker_->Connect();
  for (int i = 0; i < 5; ++i) {
    auto outcome = client->Call("prod", "Utilities/Info/ping", {});
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    ASSERT_FALSE(outcome->api_error);
    EXPECT_EQ(outcome->result, nlohmann::json({{"ping", "success"}}));
    EXPECT_EQ(outcome->account, "prod");
  }
  auto counters = storm_->Counters();
  EXPECT_EQ(counters["auth"]["password"], 1) << counters.dump();
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1);
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 5);
  EXPECT_EQ(storm_->Count("utilities/info/ping", "password"), 0);
  EXPECT_EQ(counters["auth"]["rejected"], 0);
}

TEST_F(SkeletonTest, AccountMayBeOmittedWhenTheBrokerHoldsOne) {
  StartBroker();
  auto outcome = broker_->Connect()->Call("", "utilities/info/version", {});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->result["version"], "v1");
  EXPECT_EQ(outcome->account, "prod");
}

TEST_F(SkeletonTest, UnknownMethodComesBackAsApiErrorData) {
  StartBroker();
  auto outcome = broker_->Connect()->Call("prod", "Blah/Blah/nothing", {{"x", 1}});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  ASSERT_TRUE(outcome->api_error);
  EXPECT_EQ(outcome->api_error->error_class, "LW::Exception::API::InvalidMethod");
  EXPECT_EQ(outcome->api_error->message, "Invalid API Method: Blah/Blah/nothing");
  EXPECT_EQ(outcome->api_error->extra["method"], "Blah/Blah/nothing");
  EXPECT_EQ(outcome->api_error->http_status, 200);
}

TEST_F(SkeletonTest, StormctlPrintsResultsAndApiErrorsWithTheirExitCodes) {
  StartBroker();
  auto ok = RunCommand({Binary("stormctl"), "--socket", socket_, "call", "Utilities/Info/ping"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out), nlohmann::json({{"ping", "success"}}));

  auto api_error = RunCommand({Binary("stormctl"), "call", "--account", "prod", "No/Such/method"}, "", std::nullopt,
                       {{"STORMBROKER_SOCKET", socket_}});
  EXPECT_EQ(api_error.exit_code, 3) << api_error.err;
  EXPECT_EQ(nlohmann::json::parse(api_error.out)["error_class"], "LW::Exception::API::InvalidMethod");

  auto accounts = RunCommand({Binary("stormctl"), "--socket", socket_, "accounts", "--output", "json"});
  EXPECT_EQ(accounts.exit_code, 0) << accounts.err;
  auto list = nlohmann::json::parse(accounts.out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "prod");
  EXPECT_EQ(list[0]["state"], "active");
  EXPECT_GT(list[0]["inactivity_deadline"].get<long long>(), 0);

  auto down = RunCommand({Binary("stormctl"), "--socket", dir_.path() + "/nothing.sock", "call", "Utilities/Info/ping"});
  EXPECT_EQ(down.exit_code, 2);
  EXPECT_NE(down.err.find("stormctl: unavailable:"), std::string::npos) << down.err;
  EXPECT_EQ(std::count(down.err.begin(), down.err.end(), '\n'), 1) << "one line on stderr: " << down.err;

  auto help = RunCommand({Binary("stormctl"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
  ExpectNoSecretIn(ok.out + ok.err + api_error.out + accounts.out, "stormctl output");
}

TEST_F(SkeletonTest, CallerNotAdmittedByPolicyGetsPermissionDeniedAndNothingGoesUpstream) {
  StartBroker();
  long long pings_before = storm_->Count("utilities/info/ping", "token");
  auto denied = RunCommand({Binary("stormctl"), "--socket", socket_, "call", "Utilities/Info/ping"}, "", kNobody);
  EXPECT_EQ(denied.exit_code, 5) << denied.out << denied.err;
  EXPECT_NE(denied.err.find("permission denied"), std::string::npos) << denied.err;
  EXPECT_NE(denied.err.find("uid 65534"), std::string::npos) << denied.err;
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), pings_before);
  // The nobody user sees no accounts either.
  auto accounts = RunCommand({Binary("stormctl"), "--socket", socket_, "accounts", "--output", "json"}, "", kNobody);
  EXPECT_EQ(accounts.exit_code, 0) << accounts.err;
  EXPECT_EQ(nlohmann::json::parse(accounts.out), nlohmann::json::array());
  EXPECT_NE(broker_->Log().find("denied: uid 65534"), std::string::npos);
}

TEST_F(SkeletonTest, PolicyAdmitsByUidAndMethodPattern) {
  YAML::Node config = Config();
  config["policy"] = YAML::Load(R"([{uids: [65534], accounts: [prod], methods: ["utilities/info/*"]},
                                    {users: [root], accounts: ["*"], methods: ["*"]}])");
  StartBroker(config);
  auto ping = RunCommand({Binary("stormctl"), "--socket", socket_, "call", "Utilities/Info/ping"}, "", kNobody);
  EXPECT_EQ(ping.exit_code, 0) << ping.err;
  auto other = RunCommand({Binary("stormctl"), "--socket", socket_, "call", "Account/Auth/expireToken"}, "", kNobody);
  EXPECT_EQ(other.exit_code, 5) << other.err;
}

TEST_F(SkeletonTest, BadRequestsAreRejectedBeforeReachingUpstream) {
  StartBroker();
  auto client = broker_->Connect();
  auto before = storm_->Counters();
  for (const char* method : {"", "/Utilities/Info/ping", "Utilities//ping", "../../etc/passwd",
                             "Utilities/Info/ping?x=1", "Utilities/Info/ping.yaml", "Utilities/Info/p%69ng",
                             "Utilities/Info/ping\n", "ping"}) {
    auto outcome = client->Call("prod", method, {});
    ASSERT_FALSE(outcome.ok()) << method;
    EXPECT_EQ(outcome.error().code, stormbroker::client::ErrorCode::kInvalidArgument) << method;
    EXPECT_FALSE(outcome.error().message.empty());
  }
  auto unknown = client->Call("staging", "Utilities/Info/ping", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, stormbroker::client::ErrorCode::kNotFound);
  EXPECT_EQ(storm_->Counters(), before);
}

TEST_F(SkeletonTest, KeepsTheTokenAliveBeforeItsInactivityDeadline) {
  StartBroker(harness::With(Config(), {"accounts", "prod", "token_timeout"}, "2s"));
  // Idle for well past the 2 s inactivity timeout: only keep-alives run.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  auto outcome = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "a keep-alive failed and the broker logged in again";
  EXPECT_GE(storm_->Count("account/auth/token", "token"), 3);
  EXPECT_EQ(storm_->Counters()["auth"]["rejected"], 0);
}

TEST_F(SkeletonTest, RejectedTokenCostsOneLoginAndTheCallIsRetriedOnce) {
  StartBroker();
  storm_->Revoke();  // every token dies upstream
  auto outcome = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->result["ping"], "success");
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2);
  // The call, then the keep-alive that confirmed the token was dead.
  EXPECT_EQ(storm_->Counters()["auth"]["rejected"], 2);
}

TEST_F(SkeletonTest, WrongPasswordFailsTheAccountWithoutRetrying) {
  password_file_ = dir_.Write("wrong.password", "not-the-password\n", 0600);
  StartBroker(Config(), "login-failed");
  auto outcome = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, stormbroker::client::ErrorCode::kFailedPrecondition);
  EXPECT_NE(outcome.error().message.find("password"), std::string::npos) << outcome.error().message;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(storm_->Counters()["auth"]["rejected"], 1) << "the broker retried a refused password";
  EXPECT_EQ(broker_->Log().find("not-the-password"), std::string::npos);
}

TEST_F(SkeletonTest, SecondDaemonOnTheSameSocketIsRefused) {
  StartBroker();
  auto second = RunCommand({Binary("stormbrokerd"), "--config", broker_->config_path()});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("another stormbrokerd is serving " + socket_), std::string::npos) << second.err;
  // The first one still serves.
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/ping", {}).ok());
}

TEST_F(SkeletonTest, NoSecretInTheDaemonLogAndCleanShutdown) {
  StartBroker(harness::With(Config(), {"accounts", "prod", "token_timeout"}, "2s"));
  auto client = broker_->Connect();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Call("prod", "Utilities/Info/ping", {}).ok());
  ASSERT_TRUE(client->Call("prod", "Bad/Method/x", {}).ok());
  storm_->Revoke();
  ASSERT_TRUE(client->Call("prod", "Utilities/Info/ping", {}).ok());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a keep-alive or two
  auto secrets = Secrets();
  ASSERT_GE(secrets.size(), 2u) << "no live token to look for";
  int status = broker_->process().Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  std::string log = broker_->Log();
  EXPECT_NE(log.find("token obtained"), std::string::npos) << log;
  for (const auto& secret : secrets) EXPECT_EQ(log.find(secret), std::string::npos) << "the log holds a secret";
  EXPECT_FALSE(std::filesystem::exists(socket_)) << "socket left behind";
}

}  // namespace
