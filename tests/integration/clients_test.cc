// The clients people and programs use: stormctl (every command, output
// format and exit code), the C++ library's example, a Python client from
// stubs generated at build time, and what generic gRPC tools see (health and
// reflection).

#include <gtest/gtest.h>

#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr const char* kTotpSecret = "JBSWY3DPEHPK3PXP";

class ClientsTest : public harness::BrokerTest {
 protected:
  void SetUp() override {
    storm_ = std::make_unique<harness::FakeStorm>(
        dir_, std::vector<harness::StormUser>{{"deploy-bot", "pw-clients", ""}, {"tfa-bot", "pw-tfa", kTotpSecret}});
    password_file_ = dir_.Write("prod.pw", "pw-clients", 0600);
    YAML::Node config = Config();
    // A second account, two-factor by prompt, that waits for a login.
    YAML::Node tfa = config["accounts"]["tfa"];
    tfa["username"] = "tfa-bot";
    tfa["password_file"] = dir_.Write("tfa.pw", "pw-tfa", 0600);
    tfa["two_factor"] = "prompt";
    started_ = std::chrono::steady_clock::now();
    broker_ = std::make_unique<harness::Broker>(dir_, config);
    ASSERT_TRUE(WaitForAccount("prod", "active")) << broker_->Log();
  }

  bool WaitForAccount(const std::string& name, const std::string& state) {
    return harness::Eventually([&] {
      auto accounts = broker_->Connect()->ListAccounts();
      if (!accounts.ok()) return false;
      for (const auto& a : accounts.value()) {
        if (a.name == name && a.state == state) return true;
      }
      return false;
    });
  }

  harness::RunResult Ctl(std::vector<std::string> args, const std::string& input = "",
                         std::optional<uid_t> as = std::nullopt) {
    args.insert(args.begin(), {Binary("stormctl"), "--socket", socket_});
    return RunCommand(args, input, as);
  }
  harness::RunResult Probe(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/python3", Binary("grpc_probe")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, "", std::nullopt, {{"PYTHONPATH", Binary("python_stubs")}});
  }

  std::chrono::steady_clock::time_point started_;
};

TEST_F(ClientsTest, CallPrintsJsonYamlAndTables) {
  auto json = Ctl({"call", "--account", "prod", "Storm/Server/details", "uniq_id=ABC007"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["uniq_id"], "ABC007");

  auto yaml = Ctl({"call", "--account", "prod", "Storm/Server/details", "uniq_id=ABC007", "--output", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0) << yaml.err;
  EXPECT_NE(yaml.out.find("uniq_id: ABC007\n"), std::string::npos) << yaml.out;

  auto table = Ctl({"call", "--account", "prod", "Storm/Server/list", "page_size=5", "--output", "table"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.rfind("ACTIVE  CONFIG_ID", 0), 0u) << "a header row, keys in order: " << table.out;
  EXPECT_NE(table.out.find("UNIQ_ID"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("ABC005"), std::string::npos);
  EXPECT_EQ(table.out.find("ABC006"), std::string::npos);
  EXPECT_NE(table.out.find("5 of 60 items (page 1 of 12)"), std::string::npos) << table.out;

  auto bad_output = Ctl({"call", "Utilities/Info/ping", "--output", "xml"});
  EXPECT_EQ(bad_output.exit_code, 2);
}

TEST_F(ClientsTest, AllPagesFollowsPagination) {
  auto all = Ctl({"call", "--account", "prod", "Storm/Server/list", "page_size=25", "--all-pages"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  auto result = nlohmann::json::parse(all.out);
  EXPECT_EQ(result["items"].size(), 60u);
  EXPECT_EQ(result["items"][59]["uniq_id"], "ABC060");
  EXPECT_EQ(result["item_total"], 60);
  EXPECT_EQ(storm_->Count("storm/server/list", "token"), 3);
}

TEST_F(ClientsTest, ParamsFromJsonAndYamlFilesAndStdinWithOverrides) {
  std::string json_file = dir_.Write("params.json", R"({"page_size": 2, "page_num": 3})");
  auto from_json = Ctl({"call", "--account", "prod", "Storm/Server/list", "--params", json_file});
  ASSERT_EQ(from_json.exit_code, 0) << from_json.err;
  EXPECT_EQ(nlohmann::json::parse(from_json.out)["items"][0]["uniq_id"], "ABC005");

  std::string yaml_file = dir_.Write("params.yaml", "page_size: 2\npage_num: 3\n");
  auto from_yaml = Ctl({"call", "--account", "prod", "Storm/Server/list", "--params", yaml_file, "page_num=1"});
  ASSERT_EQ(from_yaml.exit_code, 0) << from_yaml.err;
  EXPECT_EQ(nlohmann::json::parse(from_yaml.out)["items"][0]["uniq_id"], "ABC001") << "key=value overrides the file";

  auto from_stdin = Ctl({"call", "--account", "prod", "Storm/Server/details", "--params", "-"}, R"({"uniq_id": "ABC042"})");
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  EXPECT_EQ(nlohmann::json::parse(from_stdin.out)["uniq_id"], "ABC042");

  auto not_object = Ctl({"call", "Storm/Server/list", "--params", "-"}, "[1, 2]");
  EXPECT_EQ(not_object.exit_code, 2);
  EXPECT_NE(not_object.err.find("object"), std::string::npos) << not_object.err;
}

TEST_F(ClientsTest, EveryExitCode) {
  EXPECT_EQ(Ctl({"call", "--account", "prod", "Utilities/Info/ping"}).exit_code, 0);
  auto usage = Ctl({"frobnicate"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(std::count(usage.err.begin(), usage.err.end(), '\n'), 1) << usage.err;
  auto api = Ctl({"call", "--account", "prod", "Storm/Server/details", "uniq_id=NOPE"});
  EXPECT_EQ(api.exit_code, 3);
  EXPECT_EQ(nlohmann::json::parse(api.out)["error_class"], "LW::Exception::RecordNotFound");
  auto needs_login = Ctl({"call", "--account", "tfa", "Utilities/Info/ping"});
  EXPECT_EQ(needs_login.exit_code, 4);
  EXPECT_NE(needs_login.err.find("stormctl login tfa"), std::string::npos) << needs_login.err;
  auto denied = Ctl({"call", "--account", "prod", "Utilities/Info/ping"}, "", uid_t{65534});
  EXPECT_EQ(denied.exit_code, 5);
}

TEST_F(ClientsTest, AccountsAndStatusInEveryFormat) {
  auto table = Ctl({"accounts"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("needs-passcode"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("\033["), std::string::npos) << "no colour when stdout is not a terminal";
  auto json = nlohmann::json::parse(Ctl({"accounts", "--output", "json"}).out);
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["name"], "prod");
  EXPECT_EQ(json[1]["two_factor"], "prompt");
  auto yaml = Ctl({"accounts", "--output", "yaml"}).out;
  EXPECT_EQ(yaml.rfind("- ", 0), 0u) << yaml;
  EXPECT_NE(yaml.find("  name: prod\n"), std::string::npos) << yaml;

  auto status = Ctl({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(status.out.rfind("stormbrokerd " + harness::Version() + " on " + socket_ + ", up 0d 00h00m", 0), 0u)
      << status.out;
  auto status_json = nlohmann::json::parse(Ctl({"status", "--output", "json"}).out);
  EXPECT_EQ(status_json["version"], harness::Version());
  // Up since this test started it, not before.
  auto since_start = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  EXPECT_GE(status_json["uptime_seconds"].get<long>(), 0);
  EXPECT_LE(status_json["uptime_seconds"].get<long>(), since_start.count() + 1);
  EXPECT_EQ(status_json["accounts"].size(), 2u);
}

TEST_F(ClientsTest, HelpForEveryCommandAndVersion) {
  for (const char* command : {"call", "accounts", "status", "login", "logout", "token", "watch"}) {
    auto help = Ctl({command, "--help"});
    EXPECT_EQ(help.exit_code, 0) << command;
    EXPECT_EQ(help.out.rfind(std::string("usage: stormctl ") + command, 0), 0u) << help.out;
    EXPECT_NE(help.out.find("Example"), std::string::npos) << command;
    EXPECT_EQ(Ctl({"help", command}).out, help.out);
  }
  auto top = Ctl({"--help"});
  EXPECT_NE(top.out.find("Exit codes"), std::string::npos);
  EXPECT_EQ(Ctl({"--version"}).out, "stormctl " + harness::Version() + "\n");
}

TEST_F(ClientsTest, TheCppExampleAndThePythonClientMakeRealCalls) {
  auto cpp = RunCommand({Binary("client_example"), socket_, "prod"});
  EXPECT_EQ(cpp.exit_code, 0) << cpp.err;
  EXPECT_EQ(nlohmann::json::parse(cpp.out), nlohmann::json({{"ping", "success"}}));

  auto python = RunCommand({"/usr/bin/python3", Binary("python_ping"), socket_, "prod"}, "", std::nullopt,
                           {{"PYTHONPATH", Binary("python_stubs")}});
  EXPECT_EQ(python.exit_code, 0) << python.err;
  EXPECT_EQ(nlohmann::json::parse(python.out), nlohmann::json({{"ping", "success"}}));
  auto python_api_error = RunCommand({"/usr/bin/python3", Binary("python_ping"), socket_, "prod", "No/Such/method"}, "",
                                     std::nullopt, {{"PYTHONPATH", Binary("python_stubs")}});
  EXPECT_EQ(python_api_error.exit_code, 3);
  EXPECT_NE(python_api_error.out.find("InvalidMethod"), std::string::npos) << python_api_error.out;
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 2);
}

TEST_F(ClientsTest, HealthFollowsAccountStateAndReflectionListsTheServices) {
  EXPECT_EQ(Probe({"health", socket_, ""}).out, "SERVING\n");
  EXPECT_EQ(Probe({"health", socket_, "stormbroker.v1.Broker"}).out, "SERVING\n");
  EXPECT_EQ(Probe({"health", socket_, "account:tfa"}).out, "NOT_SERVING\n");
  EXPECT_EQ(Probe({"health", socket_, "account:nope"}).out, "NOT_FOUND\n");
  // prod turns SERVING within a heartbeat of its login.
  std::string prod;
  EXPECT_TRUE(harness::Eventually([&] { return (prod = Probe({"health", socket_, "account:prod"}).out) == "SERVING\n"; },
                                  3s))
      << prod;
  ASSERT_EQ(Ctl({"logout", "tfa"}).exit_code, 4) << "tfa holds no token to log out";
  ASSERT_EQ(Ctl({"logout", "prod"}).exit_code, 0);
  std::string after;
  EXPECT_TRUE(harness::Eventually(
      [&] { return (after = Probe({"health", socket_, "account:prod"}).out) == "NOT_SERVING\n"; }, 3s))
      << "no valid token after a logout: " << after;

  auto services = Probe({"services", socket_});
  EXPECT_EQ(services.exit_code, 0) << services.err;
  EXPECT_NE(services.out.find("stormbroker.v1.Broker\n"), std::string::npos) << services.out;
  EXPECT_NE(services.out.find("grpc.health.v1.Health\n"), std::string::npos) << services.out;
}

}  // namespace
