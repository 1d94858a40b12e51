// Faults against the real daemon and emulator: an upstream that is down,
// resets, stalls, runs on another clock; a state directory that cannot be
// written; a storm of reloads under load.

#include <algorithm>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr const char* kPassword = "fault-pw-31337";

class FaultTest : public harness::BrokerTest {
 protected:
  void StartStorm(std::vector<std::string> flags = {}) { BrokerTest::StartStorm(kPassword, "", std::move(flags)); }
  YAML::Node WithTokenTimeout(const std::string& value) const {
    return harness::With(Config(), {"accounts", "prod", "token_timeout"}, value);
  }
};

TEST_F(FaultTest, UpstreamDownAtStartThenRecoversWhenItAppears) {
  // The daemon starts against a port where nothing listens yet.
  int port = harness::FreePort();
  harness::CopyTestCa(dir_.path() + "/certs");
  YAML::Node config = harness::BasicConfig(socket_, "https://127.0.0.1:" + std::to_string(port) + "/v1",
                                          dir_.path() + "/certs/ca.pem", dir_.Write("prod.pw", kPassword, 0600));
  config["upstream"]["timeout"] = "5s";
  StartBroker(config, "unreachable");
  auto down = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, stormbroker::client::ErrorCode::kUnavailable);
  EXPECT_NE(down.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << down.error().message;

  StartStorm({"--port", std::to_string(port)});
  EXPECT_TRUE(broker_->WaitForState("active", 20s)) << broker_->Log();
  auto up = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->result["ping"], "success");
}

TEST_F(FaultTest, AConnectionResetMidCallIsUnavailableAndTheDaemonCarriesOn) {
  StartStorm();
  StartBroker();
  storm_->Arm(R"({"kind":"reset","method":"utilities/info/ping"})");
  auto client = broker_->Connect();
  auto reset = client->Call("prod", "Utilities/Info/ping", {});
  ASSERT_FALSE(reset.ok());
  EXPECT_EQ(reset.error().code, stormbroker::client::ErrorCode::kUnavailable) << reset.error().message;
  auto next = client->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "a transport fault is not a token problem";
}

TEST_F(FaultTest, ASlowUpstreamMeetsTheCallersDeadlineAndTheTransferIsCut) {
  StartStorm();
  StartBroker(harness::With(Config(), {"audit", "file"}, dir_.path() + "/audit.jsonl"));
  storm_->Arm(R"({"kind":"delay","delay_ms":4000,"method":"utilities/info/ping"})");
  auto started = std::chrono::steady_clock::now();
  auto slow = broker_->Connect()->Call("prod", "Utilities/Info/ping", {}, 500ms);
  auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.error().code, stormbroker::client::ErrorCode::kDeadlineExceeded) << slow.error().message;
  EXPECT_LT(waited, 3s) << "the deadline was not honoured";
  // The daemon gave up on the upstream at the deadline too, not after 4 s:
  // its record says so once it is written.
  auto is_ping = [](const nlohmann::json& r) { return r.value("method", "") == "Utilities/Info/ping"; };
  auto records = harness::AuditWhen(dir_.path() + "/audit.jsonl", [&](const std::vector<nlohmann::json>& records) {
    return std::any_of(records.begin(), records.end(), is_ping);
  });
  bool seen = false;
  for (const auto& record : records) {
    if (!is_ping(record)) continue;
    seen = true;
    EXPECT_EQ(record["outcome"], "failed") << record.dump();
    EXPECT_LT(record["latency_ms"].get<double>(), 2000) << record.dump();
  }
  EXPECT_TRUE(seen);
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/version", {}).ok());
}

TEST_F(FaultTest, AnUpstreamTimeoutMidCallIsUnavailable) {
  StartStorm();
  StartBroker(harness::With(Config(), {"upstream", "timeout"}, "1s"));
  storm_->Arm(R"({"kind":"delay","delay_ms":3000,"method":"utilities/info/ping"})");
  auto stalled = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_FALSE(stalled.ok());
  EXPECT_EQ(stalled.error().code, stormbroker::client::ErrorCode::kUnavailable);
  EXPECT_NE(stalled.error().message.find("timed out"), std::string::npos) << stalled.error().message;
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/ping", {}).ok());
}

TEST_F(FaultTest, TheUpstreamClockJumpingAheadCostsOneLoginAndNoFailedCall) {
  StartStorm();
  StartBroker(WithTokenTimeout("60s"));
  std::atomic<int> ok{0};
  auto failures = harness::Hammer(*broker_, 2, 3s, &ok, [&] {
    std::this_thread::sleep_for(1s);
    // Two minutes pass upstream at once: the token idles out there.
    storm_->Control("POST", "/clock", R"({"advance": 120})");
  });
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2) << "one re-login after the jump";
}

TEST_F(FaultTest, AnUpstreamOnAnotherClockCostsNoExtraLogin) {
  StartStorm();
  // The emulator's clock (Date header and expires) runs two hours ahead.
  storm_->Control("POST", "/clock", R"({"advance": 7200})");
  StartBroker(WithTokenTimeout("2s"));
  std::atomic<int> ok{0};
  auto failures = harness::Hammer(*broker_, 2, 6s, &ok);
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1);
  EXPECT_GE(storm_->Count("account/auth/token", "token"), 3) << "keep-alives kept to the server's timing";
  EXPECT_EQ(storm_->Counters()["auth"]["rejected"], 0);
}

TEST_F(FaultTest, AStateDirectoryThatCannotBeWrittenIsReportedAndTokensStillServe) {
  StartStorm();
  std::string state = dir_.path() + "/state";
  // A directory where the token file must go: every save fails.
  std::filesystem::create_directories(state + "/prod.token");
  StartBroker(harness::With(Config(), {"state_dir"}, state));
  auto outcome = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_NE(broker_->Log().find("cannot keep the token for a restart"), std::string::npos) << broker_->Log();
}

TEST_F(FaultTest, AHundredReloadsUnderLoadLoseNothing) {
  StartStorm();
  StartBroker();
  std::atomic<int> ok{0};
  auto failures = harness::Hammer(*broker_, 4, 4s, &ok, [&] {
    for (int i = 0; i < 100; ++i) {
      kill(broker_->process().pid(), SIGHUP);
      std::this_thread::sleep_for(20ms);
    }
  });
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_GT(ok.load(), 0);
  EXPECT_TRUE(broker_->process().Running());
  EXPECT_NE(broker_->Log().find("reloaded the policy"), std::string::npos);
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "reloads keep the token";
}

}  // namespace
