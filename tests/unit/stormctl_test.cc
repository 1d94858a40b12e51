// stormctl's parsing and commands against a scripted broker (the
// client::Client interface): what reaches the broker, and what a person
// sees on bad input.
#include <gtest/gtest.h>

#include <deque>

#include "stormctl/args.h"
#include "stormctl/commands.h"
#include "stormctl/output.h"

namespace stormbroker::stormctl {
namespace {

using client::BrokerError;
using client::CallResult;
using client::Outcome;
using std::chrono::milliseconds;

// Answers Call with scripted results and records what it was asked.
class ScriptedBroker : public client::Client {
 public:
  std::deque<nlohmann::json> answers;
  std::vector<nlohmann::json> params_seen;
  std::vector<milliseconds> timeouts_seen;
  std::vector<bool> fresh_seen;

  Outcome<CallResult> Call(const std::string& account, const std::string&, const nlohmann::json& params,
                           milliseconds timeout, bool fresh) override {
    fresh_seen.push_back(fresh);
    params_seen.push_back(params);
    timeouts_seen.push_back(timeout);
    if (answers.empty()) return BrokerError{client::ErrorCode::kUnavailable, "no more answers"};
    CallResult result{std::nullopt, answers.front(), account};
    answers.pop_front();
    return result;
  }
  Outcome<std::vector<client::AccountInfo>> ListAccounts() override { return std::vector<client::AccountInfo>{}; }
  Outcome<client::AccountInfo> Login(const std::string&, const std::string&) override { return Unused(); }
  Outcome<client::Done> Logout(const std::string&) override { return Unused(); }
  Outcome<client::DaemonStatus> GetStatus() override { return Unused(); }
  Outcome<client::MetricsSnapshot> GetMetrics() override { return Unused(); }
  Outcome<std::string> GetToken(const std::string&) override { return Unused(); }
  BrokerError Watch(const std::function<bool(const client::AccountEvent&)>&) override { return Unused(); }

 private:
  static BrokerError Unused() { return {client::ErrorCode::kOther, "not scripted"}; }
};

int RunCommand(ScriptedBroker& broker, std::vector<std::string> args) {
  const Command* command = FindCommand(args.front());
  EXPECT_NE(command, nullptr);
  args.erase(args.begin());
  std::string socket = "/nonexistent.sock";
  return command->run({broker, socket, args});
}

TEST(StormctlArgsTest, CountMustBeAWholeNumberOfAtLeastOne) {
  EXPECT_EQ(*ParseCount("count", "3"), 3);
  for (const char* bad : {"", "0", "-1", "3x", "x", "1.5", "99999999999999999999"}) {
    auto count = ParseCount("count", bad);
    ASSERT_FALSE(count.ok()) << bad;
    EXPECT_NE(count.status().message().find("--count takes a whole number"), std::string::npos);
  }
}

TEST(StormctlArgsTest, TimeoutReadsDurationsAsTheDaemonsConfigDoes) {
  EXPECT_EQ(*ParseTimeout("timeout", "30s"), milliseconds(30000));
  EXPECT_EQ(*ParseTimeout("timeout", "500ms"), milliseconds(500));
  EXPECT_EQ(*ParseTimeout("timeout", "1.5h"), milliseconds(5400000));
  EXPECT_EQ(*ParseTimeout("timeout", "90"), milliseconds(90000));
  for (const char* bad : {"0", "0s", "-5s", "soon", "5 parsecs", ""}) EXPECT_FALSE(ParseTimeout("timeout", bad).ok()) << bad;
}

TEST(StormctlArgsTest, UnknownOptionAndMissingValueAreNamed) {
  auto unknown = ParseArgs({"--colour"}, {"output"}, {"all-pages"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "unknown option --colour");
  auto missing = ParseArgs({"--output"}, {"output"}, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "--output needs a value");
  auto flag_with_value = ParseArgs({"--all-pages=yes"}, {}, {"all-pages"});
  EXPECT_FALSE(flag_with_value.ok());
  auto both = ParseArgs({"--output=yaml", "M", "--account", "prod"}, {"output", "account"}, {});
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->Get("output"), "yaml");
  EXPECT_EQ(both->Get("account"), "prod");
  EXPECT_EQ(both->positional, std::vector<std::string>{"M"});
}

TEST(StormctlCommandTest, EveryCommandIsInTheTableWithHelp) {
  for (const char* name : {"call", "accounts", "status", "login", "logout", "token", "watch"}) {
    const Command* command = FindCommand(name);
    ASSERT_NE(command, nullptr) << name;
    EXPECT_NE(std::string(command->help).find(std::string("usage: stormctl ") + name), std::string::npos);
  }
  EXPECT_EQ(FindCommand("wat"), nullptr);
}

TEST(StormctlCommandTest, CallTypesParametersAndPassesTheTimeout) {
  ScriptedBroker broker;
  broker.answers.push_back({{"ping", "success"}});
  testing::internal::CaptureStdout();
  EXPECT_EQ(RunCommand(broker, {"call", "--timeout", "2m", "Utilities/Info/ping", "n=10", "s=\"10\"", "w=word"}), kExitOk);
  testing::internal::GetCapturedStdout();
  ASSERT_EQ(broker.params_seen.size(), 1u);
  EXPECT_EQ(broker.params_seen[0], nlohmann::json({{"n", 10}, {"s", "10"}, {"w", "word"}}));
  EXPECT_EQ(broker.timeouts_seen[0], milliseconds(120000));
}

TEST(StormctlCommandTest, AllPagesFollowsEveryPage) {
  ScriptedBroker broker;
  broker.answers.push_back({{"items", {1, 2}}, {"page_num", 1}, {"page_total", 3}});
  broker.answers.push_back({{"items", {3}}, {"page_num", 2}, {"page_total", 3}});
  broker.answers.push_back({{"items", {4}}, {"page_num", 3}, {"page_total", 3}});
  testing::internal::CaptureStdout();
  EXPECT_EQ(RunCommand(broker, {"call", "Storm/Server/list", "--all-pages"}), kExitOk);
  auto printed = nlohmann::json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(printed["items"], nlohmann::json({1, 2, 3, 4}));
  EXPECT_EQ(printed["page_total"], 1);
  ASSERT_EQ(broker.params_seen.size(), 3u);
  EXPECT_EQ(broker.params_seen[2]["page_num"], 3);
}

TEST(StormctlCommandTest, AllPagesWithANonIntegerPageTotalFailsWithAMessage) {
  for (nlohmann::json total : {nlohmann::json("3"), nlohmann::json(2.5), nlohmann::json(nullptr)}) {
    ScriptedBroker broker;
    broker.answers.push_back({{"items", {1}}, {"page_num", 1}, {"page_total", total}});
    testing::internal::CaptureStderr();
    EXPECT_EQ(RunCommand(broker, {"call", "Storm/Server/list", "--all-pages"}), kExitBroker) << total.dump();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("cannot be followed"), std::string::npos) << err;
    EXPECT_EQ(broker.params_seen.size(), 1u);
  }
}

TEST(StormctlCommandTest, BadCountAndTimeoutNeverReachTheBroker) {
  ScriptedBroker broker;
  testing::internal::CaptureStderr();
  EXPECT_EQ(RunCommand(broker, {"watch", "--count", "ten"}), kExitBroker);
  EXPECT_EQ(RunCommand(broker, {"call", "--timeout", "0", "Utilities/Info/ping"}), kExitBroker);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--count takes a whole number of at least 1, not 'ten'"), std::string::npos) << err;
  EXPECT_NE(err.find("--timeout takes a duration above zero"), std::string::npos) << err;
  EXPECT_TRUE(broker.params_seen.empty());
}

}  // namespace
}  // namespace stormbroker::stormctl
