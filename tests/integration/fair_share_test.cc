// The fair line end to end: callers of other uids, as processes of their own
// (tests/integration/line_caller.py through setpriv), share four connections
// to an emulator that takes 100 ms a call, through either door.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::JoinAtEnd;
using namespace std::chrono_literals;

constexpr const char* kPassword = "fair-share-pw-5Tk";
constexpr uid_t kHeavy = 65534;  // a build job with a burst of calls
constexpr uid_t kLight = 65533;  // another team's health check

// A caller as a process of its own, running as `uid` (not a fork of this
// process: gRPC, which this process runs, does not survive one).
class LineCaller {
 public:
  LineCaller(const harness::TempDir& dir, uid_t uid, const std::vector<std::string>& args)
      : process_(Argv(uid, args), dir.path() + "/caller-" + std::to_string(uid) + ".log", /*pipe_stdout=*/true,
                 {{"PYTHONPATH", Binary("python_stubs")}}) {}
  // The next line it prints ("ready", "started"), or empty after `timeout`.
  std::string Line(std::chrono::milliseconds timeout = 30s) { return process_.ReadLine(timeout); }
  // Its closing report (line_caller.py's JSON line).
  nlohmann::json Report() {
    std::string line = Line(60s);
    return nlohmann::json::parse(line, nullptr, false);
  }

 private:
  static std::vector<std::string> Argv(uid_t uid, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/python3", Binary("line_caller")};
    argv.insert(argv.end(), args.begin(), args.end());
    return harness::AsUid(uid, argv);
  }
  harness::Process process_;
};

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Which door the callers use.
class FairShareTest : public harness::BrokerTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    StartStorm(kPassword);
    // Every call takes the API 100 ms.
    storm_->Arm(R"({"kind": "delay", "delay_ms": 100, "seconds": 600})");
  }

  // Four connections to the API; both uids may use prod, with these shares
  // (0: no share given).
  YAML::Node FairConfig(int heavy_share = 0, int light_share = 0) const {
    YAML::Node config = Config();
    config["upstream"]["max_connections"] = 4;
    config["listen"]["http_socket"] = http_socket_;
    config["policy"] = YAML::Load(R"([{users: [root], accounts: ["*"], methods: ["*"], admin: true},
                                      {uids: [65534], accounts: [prod], methods: ["*"]},
                                      {uids: [65533], accounts: [prod], methods: ["*"]}])");
    if (heavy_share) config["policy"][1]["share"] = heavy_share;
    if (light_share) config["policy"][2]["share"] = light_share;
    return config;
  }

  // line_caller.py's arguments for `door`, account prod, `method`, then `rest`.
  std::vector<std::string> Args(const std::string& door, const std::string& method,
                                std::vector<std::string> rest) const {
    std::vector<std::string> args = {door, door == "grpc" ? socket_ : http_socket_, "prod", method};
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
  }

  // stormctl status --output json, as root or `as`.
  nlohmann::json Status(std::optional<uid_t> as = std::nullopt) const {
    auto run = harness::RunCommand({Binary("stormctl"), "--socket", socket_, "status", "--output", "json"}, "", as);
    return nlohmann::json::parse(run.out, nullptr, false);
  }

  std::string http_socket_ = dir_.path() + "/run/http.sock";
};

INSTANTIATE_TEST_SUITE_P(Doors, FairShareTest, ::testing::Values("grpc", "http"));

// The issue's build farm: one job keeps 64 calls in flight, another uid
// makes 8 in a row. First come, first served made each of those 8 wait
// behind the whole line (about 1.6 s); the fair line lets it wait for one
// free connection.
TEST_P(FairShareTest, OneUidsSixtyFourCallsInFlightDoNotMakeAnotherUidWait) {
  StartBroker(FairConfig());
  constexpr double kSeconds = 6;
  LineCaller heavy(dir_, kHeavy, Args(GetParam(), "Utilities/Info/ping", {"load", "64", "--seconds", "6"}));
  ASSERT_EQ(heavy.Line(), "started");
  // Who waits is shown to the account's administrators, and to each uid
  // for itself alone.
  nlohmann::json callers;
  EXPECT_TRUE(harness::Eventually([&] {  // the line is long now
    callers = Status()["callers"];
    return !callers.empty() && callers[0]["longest_wait_ms"].get<int>() > 500;
  })) << callers.dump();
  ASSERT_FALSE(callers.empty());
  EXPECT_EQ(callers[0]["uid"], kHeavy) << callers.dump();
  EXPECT_EQ(callers[0]["account"], "prod");
  EXPECT_GT(callers[0]["waiting"].get<int>(), 40) << callers.dump();
  EXPECT_EQ(callers[0]["at_api"], 4) << callers.dump();
  EXPECT_GT(callers[0]["longest_wait_ms"].get<int>(), 500) << callers.dump();
  EXPECT_EQ(Status(kLight)["callers"], nlohmann::json::array()) << "another uid's calls were shown to a non-admin";
  LineCaller light(dir_, kLight, Args(GetParam(), "Utilities/Info/ping", {"sequence", "8"}));
  nlohmann::json light_report = light.Report();
  nlohmann::json heavy_report = heavy.Report();
  ASSERT_TRUE(light_report.is_object() && heavy_report.is_object()) << broker_->Log();

  EXPECT_EQ(light_report["ok"], 8) << light_report.dump();
  EXPECT_TRUE(light_report["failed"].empty()) << light_report.dump();
  double light_median = Median(light_report["latencies_ms"].get<std::vector<double>>());
  EXPECT_LT(light_median, 300) << "the second uid waited behind the first one's line: " << light_report.dump();

  EXPECT_TRUE(heavy_report["failed"].empty()) << heavy_report.dump();
  // Four connections at 100 ms a call answer 40 calls a second; the heavy
  // uid gets at least 80 % of that while it keeps them busy (the 8 light
  // calls are counted for it, and the line drains after its last send).
  std::vector<double> done = heavy_report["done_at"].get<std::vector<double>>();
  ASSERT_FALSE(done.empty());
  double first = *std::min_element(done.begin(), done.end());
  long answered_while_busy = std::count_if(done.begin(), done.end(), [&](double t) { return t < first + kSeconds - 1; });
  double rate = (answered_while_busy + 8.0) / (kSeconds - 1);
  EXPECT_GE(rate, 0.8 * 40) << "calls a second while the heavy uid kept 64 in flight";
  std::cout << GetParam() << ": light uid median " << light_median << " ms; heavy uid " << rate << " calls/s\n";
}

// Two uids keeping the line full, with shares 3 and 1, are answered about
// 3:1 while both wait.
TEST_P(FairShareTest, SharesDivideTheConnectionsInTheirRatio) {
  StartBroker(FairConfig(/*heavy_share=*/3, /*light_share=*/1));
  std::string go = dir_.path() + "/go";
  LineCaller three(dir_, kHeavy, Args(GetParam(), "Utilities/Info/ping", {"load", "32", "--seconds", "5", "--go", go}));
  LineCaller one(dir_, kLight, Args(GetParam(), "Utilities/Info/ping", {"load", "32", "--seconds", "5", "--go", go}));
  ASSERT_EQ(three.Line(), "ready");
  ASSERT_EQ(one.Line(), "ready");
  std::ofstream(go).put('\n');
  ASSERT_EQ(three.Line(), "started");
  ASSERT_EQ(one.Line(), "started");
  nlohmann::json three_report = three.Report();
  nlohmann::json one_report = one.Report();
  ASSERT_TRUE(three_report.is_object() && one_report.is_object()) << broker_->Log();
  EXPECT_TRUE(three_report["failed"].empty()) << three_report.dump();
  EXPECT_TRUE(one_report["failed"].empty()) << one_report.dump();

  // Counted while both lines are full: after the first second, before
  // either stops sending.
  auto times = [](const nlohmann::json& report) { return report["done_at"].get<std::vector<double>>(); };
  std::vector<double> a = times(three_report), b = times(one_report);
  ASSERT_FALSE(a.empty() || b.empty());
  double from = std::max(a.front(), b.front()) + 1, to = std::min(a.back(), b.back()) - 2;
  ASSERT_GT(to - from, 1.0);
  auto within = [&](const std::vector<double>& done) {
    return std::count_if(done.begin(), done.end(), [&](double t) { return t >= from && t < to; });
  };
  double ratio = static_cast<double>(within(a)) / std::max<long>(1, within(b));
  EXPECT_NEAR(ratio, 3.0, 0.6) << within(a) << " vs " << within(b) << " calls answered";
  std::cout << GetParam() << ": shares 3:1 answered " << within(a) << ":" << within(b) << "\n";
}

// A caller that gives up while its call waits in line: the call never
// reaches the API.
TEST_P(FairShareTest, ACallAbandonedInLineNeverReachesTheApi) {
  YAML::Node config = FairConfig();
  config["upstream"]["max_connections"] = 1;
  StartBroker(config);
  // Root's call holds the only connection for 1.5 s.
  storm_->Arm(R"({"kind": "delay", "delay_ms": 1500, "method": "storm/server/list"})");
  std::thread blocker([&] { EXPECT_TRUE(broker_->Connect()->Call("prod", "Storm/Server/list", {}).ok()); });
  JoinAtEnd join_blocker{blocker};
  ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("delay", 0) >= 2; }));
  long long before = storm_->Count("utilities/info/ping", "token");
  LineCaller quitter(dir_, kHeavy, Args(GetParam(), "Utilities/Info/ping", {"abandon", "5", "--wait", "0.5"}));
  EXPECT_EQ(quitter.Report()["abandoned"], 5);
  blocker.join();
  // The line is empty: a call now goes straight through, and the five never went.
  ASSERT_TRUE(broker_->Connect()->Call("prod", "Storm/Server/list", {}).ok());
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), before) << broker_->Log();
}

// The API says 429 with Retry-After: 2. For two seconds no call of the
// account reaches it; callers whose deadline allows wait in their place and
// are answered after, the others are refused at once with the time to
// wait, in each door's own words; the keep-alive goes on.
TEST_P(FairShareTest, ASlowDownFromTheApiPausesTheAccountAndWhoCanWaitIsServed) {
  YAML::Node config = FairConfig();
  config["accounts"]["prod"]["token_timeout"] = "2s";  // a keep-alive every second or so
  StartBroker(config);
  std::string go = dir_.path() + "/go";
  LineCaller patient(dir_, kHeavy, Args(GetParam(), "Storm/Server/list", {"burst", "5", "--deadline", "5", "--go", go}));
  LineCaller hasty(dir_, kLight, Args(GetParam(), "Storm/Server/list", {"burst", "5", "--deadline", "1", "--go", go}));
  ASSERT_EQ(patient.Line(), "ready");
  ASSERT_EQ(hasty.Line(), "ready");

  storm_->Arm(R"({"kind": "rate_limit", "retry_after": 2, "method": "storm/server/list"})");
  auto started = std::chrono::steady_clock::now();
  std::thread first([&] {
    auto answer = broker_->Connect()->Call("prod", "Storm/Server/list", {}, 5s);
    EXPECT_TRUE(answer.ok()) << answer.error().message;
    EXPECT_GE(std::chrono::steady_clock::now() - started, 1800ms) << "sent again before the pause ended";
  });
  JoinAtEnd join_first{first};
  ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("rate_limit", 0) == 1; }));
  long long lists = storm_->Count("storm/server/list", "token");
  long long keep_alives = storm_->Count("account/auth/token", "token");
  std::ofstream(go).put('\n');
  nlohmann::json account = Status()["accounts"][0];
  EXPECT_GT(account.value("paused_until", 0.0), 0.0) << "status does not show the pause: " << account.dump();
  std::this_thread::sleep_until(started + 1700ms);
  EXPECT_EQ(storm_->Count("storm/server/list", "token"), lists) << "a call reached the API during its pause";
  EXPECT_GT(storm_->Count("account/auth/token", "token"), keep_alives) << "the keep-alive waited out the pause";

  nlohmann::json patient_report = patient.Report(), hasty_report = hasty.Report();
  first.join();
  EXPECT_EQ(patient_report["ok"], 5) << patient_report.dump();
  EXPECT_EQ(hasty_report["ok"], 0) << hasty_report.dump();
  std::string refusal = GetParam() == "grpc" ? "RESOURCE_EXHAUSTED" : "HTTP_429";
  EXPECT_EQ(hasty_report["failed"].value(refusal, 0), 5) << hasty_report.dump();
  for (const auto& after : hasty_report["retry_after_ms"]) {
    EXPECT_GT(after.get<long>(), 0);
    EXPECT_LE(after.get<long>(), 2000);
  }
  EXPECT_EQ(hasty_report["retry_after_ms"].size(), 5u) << "a refusal did not say when to come back";
  std::string log = broker_->Log();
  size_t said = 0;
  for (size_t at = log.find("asked to slow down"); at != std::string::npos; at = log.find("asked to slow down", at + 1)) {
    ++said;
  }
  EXPECT_EQ(said, 1u) << "the pause is logged once\n" << log;
}

// A read that a cache rule covers is shared by whoever asks it while it is
// in flight. Started by a uid with a long backlog, it used to wait in that
// uid's place (so joining it cost another uid the whole backlog); now it
// waits in each joiner's lane too and leaves the line at the first turn.
TEST_P(FairShareTest, JoiningAPopularReadCostsNoMoreThanACallOfOnesOwn) {
  YAML::Node config = FairConfig();
  config["upstream"]["max_connections"] = 1;
  config["cache"] = YAML::Load(R"([{methods: [Storm/Server/list], ttl: 3s}])");
  StartBroker(config);
  // About six seconds of backlog in the heavy uid's lane (64 reads of 100 ms,
  // one at a time), each a question of its own. (Reads: a call no rule covers
  // may write, and a write makes later callers start a read afresh.)
  LineCaller heavy(dir_, kHeavy,
                   Args(GetParam(), "Storm/Server/list", {"load", "64", "--seconds", "8", "--distinct"}));
  ASSERT_EQ(heavy.Line(), "started");
  std::this_thread::sleep_for(500ms);
  LineCaller heavy_read(dir_, kHeavy, Args(GetParam(), "Storm/Server/list", {"sequence", "1"}));
  std::this_thread::sleep_for(500ms);
  LineCaller light_read(dir_, kLight, Args(GetParam(), "Storm/Server/list", {"sequence", "1"}));
  nlohmann::json light = light_read.Report();
  nlohmann::json shared = heavy_read.Report();
  ASSERT_TRUE(light.is_object() && shared.is_object()) << broker_->Log();
  ASSERT_EQ(light["ok"], 1) << light.dump();
  EXPECT_LT(light["latencies_ms"][0].get<double>(), 1500) << "the joiner waited in the starter's place";
  EXPECT_EQ(shared["ok"], 1) << shared.dump();
  EXPECT_LT(shared["latencies_ms"][0].get<double>(), 2500) << "the starter was not answered with the joiner";
  heavy.Report();
}

}  // namespace
