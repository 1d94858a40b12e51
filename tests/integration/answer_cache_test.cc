// One answer for many, end to end: callers of two uids through both doors
// ask the same question of an emulator that takes its time, and the API
// hears it once.

#include <gtest/gtest.h>

#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::JoinAtEnd;
using namespace std::chrono_literals;

constexpr const char* kPassword = "answer-cache-pw-2Wq";
constexpr uid_t kFirst = 65534, kSecond = 65533;
constexpr uid_t kPingOnly = 65532;  // may ping, not list

// line_caller.py as `uid`: its JSON report.
nlohmann::json Calls(const std::string& door, const std::string& target, uid_t uid, const std::string& method,
                     std::vector<std::string> rest) {
  std::vector<std::string> argv = {"/usr/bin/python3", Binary("line_caller"), door, target, "prod", method};
  argv.insert(argv.end(), rest.begin(), rest.end());
  auto run = harness::RunCommand(harness::AsUid(uid, argv, {{"PYTHONPATH", Binary("python_stubs")}}));
  std::string out = run.out.substr(0, run.out.find_last_not_of('\n') + 1);
  nlohmann::json report = nlohmann::json::parse(out.substr(out.rfind('\n') + 1), nullptr, false);
  if (!report.is_object()) ADD_FAILURE() << "line_caller.py said: " << run.out << run.err;
  return report.is_object() ? report : nlohmann::json::object();
}

class AnswerCacheTest : public harness::BrokerTest {
 protected:
  void SetUp() override {
    StartStorm(kPassword);
    YAML::Node config = Config();
    config["listen"]["http_socket"] = http_socket_;
    config["policy"] = YAML::Load(R"([{users: [root], accounts: ["*"], methods: ["*"]},
                                      {uids: [65534, 65533], accounts: [prod], methods: ["*"]},
                                      {uids: [65532], accounts: [prod], methods: [Utilities/Info/ping]}])");
    config["cache"] = YAML::Load(R"([{methods: [Storm/Server/list, Storm/Server/details], ttl: 3s}])");
    StartBroker(config);
  }
  long long Lists() const { return storm_->Count("storm/server/list", "token"); }
  nlohmann::json List(const nlohmann::json& params = nlohmann::json::object(), bool fresh = false) {
    auto answer = broker_->Connect()->Call("prod", "Storm/Server/list", params, 30s, fresh);
    EXPECT_TRUE(answer.ok()) << (answer.ok() ? "" : answer.error().message);
    return answer.ok() ? answer->result : nlohmann::json();
  }

  std::string http_socket_ = dir_.path() + "/run/http.sock";
};

TEST_F(AnswerCacheTest, FortyIdenticalReadsCostTheApiOneCallAndRepeatsWithinTheTtlNone) {
  // The first list takes 1.5 s: every other caller asks meanwhile.
  storm_->Arm(R"({"kind": "delay", "delay_ms": 1500, "method": "storm/server/list"})");
  nlohmann::json first, second;
  std::thread grpc_callers([&] { first = Calls("grpc", socket_, kFirst, "Storm/Server/list", {"burst", "20"}); });
  JoinAtEnd join_grpc{grpc_callers};
  std::thread http_callers([&] { second = Calls("http", http_socket_, kSecond, "Storm/Server/list", {"burst", "20"}); });
  JoinAtEnd join_http{http_callers};
  grpc_callers.join();
  http_callers.join();
  EXPECT_EQ(first["ok"], 20) << first.dump();
  EXPECT_EQ(second["ok"], 20) << second.dump();
  EXPECT_EQ(Lists(), 1) << "40 identical reads reached the API more than once";

  // Within the ttl, through the other door, in another letter case and encoding: no call.
  nlohmann::json again = Calls("http", http_socket_, kFirst, "storm/server/LIST.json", {"sequence", "3"});
  EXPECT_EQ(again["ok"], 3) << again.dump();
  EXPECT_EQ(Lists(), 1);
  // A uid that may not list is refused, though the answer is there.
  nlohmann::json refused = Calls("grpc", socket_, kPingOnly, "Storm/Server/list", {"sequence", "1"});
  EXPECT_EQ(refused["failed"].value("PERMISSION_DENIED", 0), 1) << refused.dump();
  // An HTTP answer from the cache says how old it is (RFC 9111's Age).
  auto curl = harness::RunCommand({"/usr/bin/curl", "-s", "-i", "--unix-socket", http_socket_, "-H",
                                   "X-Stormbroker-Account: prod", "-d", "{}", "http://broker/v1/Storm/Server/list"});
  EXPECT_NE(curl.out.find("Age: "), std::string::npos) << curl.out.substr(0, 400);
  EXPECT_EQ(Lists(), 1);

  // Each of these goes upstream once: fresh, other params, the ttl over.
  List({}, /*fresh=*/true);
  EXPECT_EQ(Lists(), 2);
  List({{"page_size", 5}});
  List({{"page_size", 5}});
  EXPECT_EQ(Lists(), 3);
  std::this_thread::sleep_for(3100ms);
  List();
  EXPECT_EQ(Lists(), 4);

  // The audit says how each was answered; the metrics count it.
  auto metrics = Ctl({"metrics"}).out;
  EXPECT_NE(metrics.find(R"(stormbroker_cache_requests_total{account="prod",result="coalesced"} 39)"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(stormbroker_cache_requests_total{account="prod",result="bypass"} 1)"), std::string::npos);
  EXPECT_NE(metrics.find("stormbroker_cache_bytes "), std::string::npos);
  std::string log = broker_->Log();
  for (const char* how : {R"("cache":"miss")", R"("cache":"coalesced")", R"("cache":"hit")", R"("cache":"bypass")"}) {
    EXPECT_NE(log.find(how), std::string::npos) << how << " is in no audit record";
  }
}

TEST_F(AnswerCacheTest, AWriteOnTheAccountMakesTheNextReadGoUpstreamAndShowIt) {
  auto domain_of_first = [](const nlohmann::json& list) { return list["items"][0]["domain"].get<std::string>(); };
  std::string before = domain_of_first(List());
  List();
  EXPECT_EQ(Lists(), 1);
  auto update = broker_->Connect()->Call("prod", "Storm/Server/update",
                                         {{"uniq_id", List()["items"][0]["uniq_id"]}, {"domain", "renamed.example"}});
  ASSERT_TRUE(update.ok() && !update->api_error) << (update.ok() ? update->result.dump() : update.error().message);
  EXPECT_NE(before, "renamed.example");
  EXPECT_EQ(domain_of_first(List()), "renamed.example") << "a stored answer from before the write came back";
  EXPECT_EQ(Lists(), 2);
}

TEST_F(AnswerCacheTest, TheCallerWhoStartedASharedCallMayLeaveAndTheOthersStillGetTheAnswer) {
  storm_->Arm(R"({"kind": "delay", "delay_ms": 1500, "method": "storm/server/list"})");
  std::thread leader([&] {
    auto answer = broker_->Connect()->Call("prod", "Storm/Server/list", {}, 500ms);
    ASSERT_FALSE(answer.ok()) << "the leader's deadline did not end its wait";
    EXPECT_EQ(answer.error().code, stormbroker::client::ErrorCode::kDeadlineExceeded);
  });
  JoinAtEnd join_leader{leader};
  ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("delay", 0) == 1; }));
  std::vector<std::thread> others;
  std::atomic<int> answered{0};
  for (int i = 0; i < 9; ++i) {
    others.emplace_back([&] {
      auto answer = broker_->Connect()->Call("prod", "Storm/Server/list", {}, 10s);
      if (answer.ok() && answer->result.contains("items")) ++answered;
    });
  }
  for (auto& t : others) t.join();
  EXPECT_EQ(answered, 9);
  EXPECT_EQ(Lists(), 1);
}

// Each caller waiting for a shared answer keeps its own deadline, on every
// door: the HTTP caller that said 1 s gets 504 at about 1 s, not when the
// 3 s call ends, and the call goes on for the caller that waits longer.
TEST_F(AnswerCacheTest, EachWaiterOfASharedReadKeepsItsOwnDeadline) {
  storm_->Arm(R"({"kind": "delay", "delay_ms": 3000, "method": "storm/server/list"})");
  std::atomic<bool> patient_answered{false};
  std::thread patient([&] {
    auto answer = broker_->Connect()->Call("prod", "Storm/Server/list", {}, 10s);
    patient_answered = answer.ok() && answer->result.contains("items");
  });
  JoinAtEnd join_patient{patient};
  ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("delay", 0) == 1; }));
  std::string envelope = dir_.Write("list.json", "{}");
  auto timed = harness::RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                                    "-u", "prod:x", "-H", "X-Stormbroker-Timeout: 1", "--unix-socket", http_socket_,
                                    "--data-binary", "@" + envelope, "http://broker/v1/Storm/Server/list"});
  EXPECT_EQ(timed.out.substr(0, 3), "504") << timed.out;
  EXPECT_LT(std::stod(timed.out.substr(4)), 2.0) << "the waiter's own deadline did not end its wait";
  patient.join();
  EXPECT_TRUE(patient_answered) << "the shared call did not go on for the caller still waiting";
  EXPECT_EQ(Lists(), 1);
}

// A lone caller of a covered method is held to its deadline as a caller of
// any other method is (over HTTP, where no client library enforces it).
TEST_F(AnswerCacheTest, ALoneCoveredReadEndsAtItsDeadline) {
  storm_->Arm(R"({"kind": "delay", "delay_ms": 3000, "method": "storm/server/list"})");
  std::string envelope = dir_.Write("list.json", R"({"params": {"page_size": 7}})");
  auto timed = harness::RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                                    "-u", "prod:x", "-H", "X-Stormbroker-Timeout: 1", "--unix-socket", http_socket_,
                                    "--data-binary", "@" + envelope, "http://broker/v1/Storm/Server/list"});
  EXPECT_EQ(timed.out.substr(0, 3), "504") << timed.out;
  EXPECT_LT(std::stod(timed.out.substr(4)), 2.0);
}

}  // namespace
