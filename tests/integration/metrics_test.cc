// The metrics end to end: a known mix of calls through the real daemon
// against the emulator, then the counters read back from GET /metrics (with
// curl), the textfile and stormctl; promtool (Prometheus' own checker) on
// the exposition.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <sstream>

#include "harness.h"

namespace {

using harness::RunCommand;
using std::chrono::milliseconds;

constexpr const char* kPassword = "metrics-pw-5Tq";

// One series' value from the text exposition; nothing when it is absent.
// `series` is written exactly as the text has it, labels in their order.
std::optional<double> ValueOf(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

class MetricsTest : public harness::BrokerTest {
 protected:
  void SetUp() override {
    StartStorm(kPassword);
    port_ = harness::FreePort();
    textfile_ = dir_.path() + "/textfile/stormbroker.prom";
    std::filesystem::create_directories(dir_.path() + "/textfile");
  }

  // Metrics on a port and in a textfile (every second); root may call
  // Utilities/Info/* only, and read the metrics.
  YAML::Node Config() const {
    YAML::Node config = BrokerTest::Config();
    config["metrics"]["listen"] = "127.0.0.1:" + std::to_string(port_);
    config["metrics"]["textfile"] = textfile_;
    config["metrics"]["interval"] = "1s";
    config["policy"] =
        YAML::Load(R"([{users: [root], accounts: ["*"], methods: ["Utilities/Info/*"], admin: true},
                       {users: [root], metrics: true}])");
    return config;
  }

  std::string Scrape() const {
    auto scraped = RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port_) + "/metrics"});
    EXPECT_EQ(scraped.exit_code, 0) << scraped.err;
    return scraped.out;
  }

  void CallAs(const std::string& method, bool expect_ok) {
    auto outcome = broker_->Connect()->Call("prod", method, {});
    EXPECT_EQ(outcome.ok(), expect_ok) << method;
  }

  int port_ = 0;
  std::string textfile_;
};

TEST_F(MetricsTest, AKnownMixOfCallsGivesExactlyTheseCounters) {
  StartBroker(Config());
  CallAs("Utilities/Info/ping", true);
  CallAs("Utilities/Info/PING", true);  // one series: methods are lower-cased
  CallAs("Utilities/Info/version", true);
  auto api_error = broker_->Connect()->Call("prod", "Utilities/Info/nosuch", {});  // an API exception, as data
  ASSERT_TRUE(api_error.ok());
  EXPECT_TRUE(api_error->api_error.has_value());
  CallAs("Storm/Server/list", false);                          // denied by policy
  CallAs("Utilities//ping", false);                            // invalid
  CallAs("Utilities/Info/" + std::string(4096, 'x'), false);   // invalid, and must not become a label
  EXPECT_FALSE(broker_->Connect()->Call("nosuch-account", "Utilities/Info/ping", {}).ok());  // invalid

  std::string text = Scrape();
  auto calls = [&](const std::string& method, const std::string& outcome) {
    return ValueOf(text, "stormbroker_calls_total{account=\"" + std::string(method.empty() ? "" : "prod") +
                             "\",method=\"" + method + "\",outcome=\"" + outcome + "\"}");
  };
  EXPECT_EQ(calls("utilities/info/ping", "ok"), 2) << text;
  EXPECT_EQ(calls("utilities/info/version", "ok"), 1);
  // A method the API never answered without an exception has no series of
  // its own: callers could make up any number of them.
  EXPECT_EQ(calls("other", "api_error"), 1);
  EXPECT_EQ(text.find("utilities/info/nosuch"), std::string::npos);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_calls_total{account="prod",method="",outcome="denied"})"), 1);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_calls_total{account="prod",method="",outcome="invalid"})"), 2);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_calls_total{account="",method="",outcome="invalid"})"), 1)
      << "an account the broker does not hold is no label value";
  EXPECT_EQ(text.find("xxxxxxxx"), std::string::npos) << "a caller's 4 KiB method became a label";
  EXPECT_EQ(text.find("nosuch-account"), std::string::npos);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_caller_refusals_total{door="grpc",reason="policy"})"), 1);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_caller_refusals_total{door="grpc",reason="invalid"})"), 3);
  // Allowed calls only, so 4 calls (3 ok, 1 API error) and as many upstream exchanges.
  EXPECT_EQ(ValueOf(text, R"(stormbroker_call_duration_seconds_count{account="prod"})"), 4);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_upstream_duration_seconds_count{account="prod"})"), 4);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_logins_total{account="prod",kind="password",result="ok"})"), 1);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_account_state{account="prod",state="active"})"), 1);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_account_state{account="prod",state="starting"})"), 0);
  EXPECT_EQ(ValueOf(text, R"(stormbroker_build_info{version=")" + harness::Version() + "\"}"), 1);
  EXPECT_GT(ValueOf(text, "process_resident_memory_bytes").value_or(0), 1 << 20);
  EXPECT_GT(ValueOf(text, "process_open_fds").value_or(0), 3);
  EXPECT_EQ(ValueOf(text, "stormbroker_audit_records_dropped_total"), 0);

  // The same through stormctl (the same families, read over gRPC).
  auto ctl = Ctl({"metrics"});
  ASSERT_EQ(ctl.exit_code, 0) << ctl.err;
  EXPECT_EQ(ValueOf(ctl.out, R"(stormbroker_calls_total{account="prod",method="utilities/info/ping",outcome="ok"})"),
            2);
}

TEST_F(MetricsTest, PromtoolAcceptsTheExposition) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool")) << "promtool: Debian's prometheus (scripts/setup)";
  StartBroker(Config());
  CallAs("Utilities/Info/ping", true);
  CallAs("Storm/Server/list", false);
  std::string text = Scrape();
  auto checked = RunCommand({"/usr/bin/promtool", "check", "metrics"}, text);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err << text;
  EXPECT_EQ(checked.out + checked.err, "") << "promtool has lint findings";
}

TEST_F(MetricsTest, DeadlinesMatchStormctlAccounts) {
  StartBroker(Config());
  auto accounts = Ctl({"accounts", "--output", "json"});
  ASSERT_EQ(accounts.exit_code, 0) << accounts.err;
  nlohmann::json prod = nlohmann::json::parse(accounts.out)[0];
  std::string text = Scrape();
  auto inactivity = ValueOf(text, R"(stormbroker_token_inactivity_deadline_timestamp_seconds{account="prod"})");
  auto hard = ValueOf(text, R"(stormbroker_token_hard_deadline_timestamp_seconds{account="prod"})");
  ASSERT_TRUE(inactivity && hard) << text;
  // stormctl prints whole seconds; a keep-alive between the two readings
  // could move the inactivity deadline, the hard one never moves.
  EXPECT_NEAR(*hard, prod["hard_deadline"].get<double>(), 1.0) << accounts.out;
  EXPECT_NEAR(*inactivity, prod["inactivity_deadline"].get<double>(), 2.0) << accounts.out;
}

TEST_F(MetricsTest, TheTextfileIsReplacedWholeEverySecond) {
  StartBroker(Config());
  ASSERT_TRUE(harness::Eventually([&] { return std::filesystem::exists(textfile_); }, std::chrono::seconds(5)));
  struct stat first {};
  ASSERT_EQ(stat(textfile_.c_str(), &first), 0);
  EXPECT_EQ(first.st_mode & 0777, 0644u) << "the node exporter runs as another user";
  CallAs("Utilities/Info/ping", true);
  // Renamed over, not written in place: a new inode, and every version whole.
  EXPECT_TRUE(harness::Eventually(
      [&] {
        std::string text = harness::ReadFile(textfile_);
        EXPECT_NE(text.find("process_start_time_seconds"), std::string::npos) << "a reader saw half a file";
        struct stat now {};
        auto pings =
            ValueOf(text, R"(stormbroker_calls_total{account="prod",method="utilities/info/ping",outcome="ok"})");
        return stat(textfile_.c_str(), &now) == 0 && now.st_ino != first.st_ino && pings == 1;
      },
      std::chrono::seconds(4)));
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path() + "/textfile")) {
    EXPECT_EQ(entry.path().string(), textfile_) << "a temporary file was left behind";
  }
}

TEST_F(MetricsTest, RenewalsAndKeepAlivesAreCounted) {
  YAML::Node config = Config();
  config["accounts"]["prod"]["max_lifetime"] = "4s";
  config["accounts"]["prod"]["renew_before"] = "2s";
  config["accounts"]["prod"]["token_timeout"] = "3s";
  StartBroker(config);
  std::string text;
  harness::Eventually(
      [&] {
        text = Scrape();
        return ValueOf(text, R"(stormbroker_renewals_total{account="prod",result="ok"})").value_or(0) >= 1 &&
               ValueOf(text, R"(stormbroker_keepalives_total{account="prod",result="ok"})").value_or(0) >= 1;
      },
      std::chrono::seconds(10));
  double renewals = ValueOf(text, R"(stormbroker_renewals_total{account="prod",result="ok"})").value_or(0);
  EXPECT_GE(renewals, 1) << text;
  EXPECT_GE(ValueOf(text, R"(stormbroker_keepalives_total{account="prod",result="ok"})").value_or(0), 1) << text;
  // Every renewal is a password login too: the first login plus the renewals.
  EXPECT_EQ(ValueOf(text, R"(stormbroker_logins_total{account="prod",kind="password",result="ok"})"), 1 + renewals);
}

TEST_F(MetricsTest, OnlyTheAccountsACallerMayUse) {
  YAML::Node config = Config();
  config["accounts"]["other"] = config["accounts"]["prod"];
  config["policy"].push_back(YAML::Load(R"({uids: [65534], accounts: [prod], methods: ["Utilities/Info/*"]})"));
  StartBroker(config);
  auto as_nobody = RunCommand({harness::Binary("stormctl"), "--socket", socket_, "metrics"}, "", 65534);
  ASSERT_EQ(as_nobody.exit_code, 0) << as_nobody.err;
  EXPECT_NE(as_nobody.out.find(R"({account="prod",state="active"})"), std::string::npos) << as_nobody.out;
  EXPECT_EQ(as_nobody.out.find(R"(account="other")"), std::string::npos) << "nobody may not use account other";
  EXPECT_NE(Ctl({"metrics"}).out.find(R"(account="other")"), std::string::npos);
}

// The endpoint knows its callers from the kernel, which it can ask only
// about loopback connections.
TEST_F(MetricsTest, AnAddressOffLoopbackIsRefused) {
  YAML::Node config = harness::With(Config(), {"metrics", "listen"}, "0.0.0.0:" + std::to_string(port_));
  dir_.Write("stormbroker.yaml", harness::ToYaml(config));
  auto check = RunCommand({harness::Binary("stormbrokerd"), "--config", dir_.path() + "/stormbroker.yaml",
                           "--check-config"});
  EXPECT_EQ(check.exit_code, 1) << check.err;
  EXPECT_NE((check.out + check.err).find("metrics.listen is not a loopback address"), std::string::npos)
      << check.out << check.err;
}

}  // namespace

namespace {

// stormctl top in a real terminal: tmux runs it, the test reads the screen.
class Tmux {
 public:
  Tmux(const std::string& socket, const std::string& command) : socket_(socket) {
    Run({"new-session", "-d", "-x", "160", "-y", "30", command});
  }
  ~Tmux() { Run({"kill-server"}); }
  std::string Screen() const { return Run({"capture-pane", "-p"}).out; }
  void Keys(const std::string& keys) const { Run({"send-keys", keys}); }
  bool Alive() const { return Run({"has-session"}).exit_code == 0; }

 private:
  harness::RunResult Run(std::vector<std::string> args) const {
    args.insert(args.begin(), {"/usr/bin/tmux", "-S", socket_});
    return RunCommand(args);
  }
  std::string socket_;
};

// The numbers in the row of `account` on `screen` (the columns after the
// account's name, state and deadlines); empty when there is no such row.
std::vector<double> RowOf(const std::string& screen, const std::string& account) {
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name, state, idle, hard;
    if (!(words >> name >> state >> idle >> hard) || name != account) continue;
    std::vector<double> numbers;
    for (double value; words >> value;) numbers.push_back(value);
    return numbers;
  }
  return {};
}

}  // namespace

TEST_F(MetricsTest, StormctlTopInATerminalCountsACallAndQuitsOnQ) {
  StartBroker(Config());
  Tmux tmux(dir_.path() + "/tmux.sock", harness::Binary("stormctl") + " --socket " + socket_ + " top");
  std::string screen;
  ASSERT_TRUE(harness::Eventually([&] { return !RowOf(screen = tmux.Screen(), "prod").empty(); },
                                  std::chrono::seconds(5)))
      << screen;
  EXPECT_NE(screen.find("ACCOUNT"), std::string::npos) << screen;
  EXPECT_NE(screen.find("active"), std::string::npos) << screen;
  EXPECT_NE(screen.find("q quits"), std::string::npos) << screen;
  // Calls keep coming until the view shows them: ok/s is the first number.
  bool counted = false;
  for (int i = 0; i < 30 && !counted; ++i) {
    CallAs("Utilities/Info/ping", true);
    std::this_thread::sleep_for(milliseconds(200));
    screen = tmux.Screen();
    std::vector<double> row = RowOf(screen, "prod");
    counted = !row.empty() && row[0] > 0;
  }
  EXPECT_TRUE(counted) << screen;
  RecordProperty("screen", screen);  // in --gtest_output=xml, for the README's picture
  tmux.Keys("q");
  EXPECT_TRUE(harness::Eventually([&] { return !tmux.Alive(); }, std::chrono::seconds(5)))
      << "stormctl top did not quit on q: " << tmux.Screen();
}

TEST_F(MetricsTest, StormctlTopOffATerminalPrintsPlainFrames) {
  StartBroker(Config());
  auto top = Ctl({"top", "--count", "2"});
  ASSERT_EQ(top.exit_code, 0) << top.err;
  EXPECT_EQ(top.out.find('\033'), std::string::npos) << "escape codes off a terminal";
  size_t frames = 0;
  for (size_t at = top.out.find("ACCOUNT"); at != std::string::npos; at = top.out.find("ACCOUNT", at + 1)) ++frames;
  EXPECT_EQ(frames, 2u) << top.out;
  EXPECT_FALSE(RowOf(top.out, "prod").empty()) << top.out;
}
