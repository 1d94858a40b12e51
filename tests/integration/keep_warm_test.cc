// upstream.keep_warm end to end: pings only within warm_for of a caller's
// call, and never more often than the API's keep-alive timeout (stated in
// Keep-Alive: timeout=N) or, when the API states none, the configured
// interval. Pings are counted at the emulator (Utilities/Info/ping with a
// token), the callers' own calls being another method.
#include <gtest/gtest.h>

#include "harness.h"

namespace {

using namespace std::chrono_literals;

constexpr const char* kPassword = "keep-warm-pw-6Rb";

class KeepWarmTest : public harness::BrokerTest {
 protected:
  // The emulator over plain HTTP (its own Keep-Alive header states
  // `keep_alive` seconds).
  void StartPlainStorm(int keep_alive) {
    StartStorm(kPassword, "", {"--plain", "--keep-alive", std::to_string(keep_alive)});
  }
  YAML::Node WarmConfig(const std::string& url, const std::string& warm_for, const std::string& interval) const {
    YAML::Node config = Config();
    config["upstream"]["url"] = url;
    config["upstream"]["keep_warm"]["connections"] = "1";
    config["upstream"]["keep_warm"]["warm_for"] = warm_for;
    config["upstream"]["keep_warm"]["interval"] = interval;
    return config;
  }
  long long Pings() const { return storm_->Count("utilities/info/ping", "token"); }
  void CallerCall() {
    auto outcome = broker_->Connect()->Call("prod", "Storm/Server/list", {});
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  }
};

TEST_F(KeepWarmTest, NoPingBeforeACallNorOnceIdleLongerThanWarmFor) {
  StartPlainStorm(2);  // Keep-Alive: timeout=2: a ping about every second
  StartBroker(WarmConfig(storm_->url(), "3s", "1s"));
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(Pings(), 0) << "no call yet: nothing to keep warm";
  CallerCall();
  auto called = std::chrono::steady_clock::now();
  // Warm for 3 s after the call: rounds at about 1, 2 and 3 s, then none.
  std::this_thread::sleep_until(called + 5s);
  long long warm = Pings();
  EXPECT_GE(warm, 2);
  EXPECT_LE(warm, 4);
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(Pings(), warm) << "idle longer than warm_for: no ping";
  // The next call starts the rounds again.
  CallerCall();
  EXPECT_TRUE(harness::Eventually([&] { return Pings() > warm; }, 3s));
  harness::RunResult metrics = Ctl({"metrics"});
  EXPECT_NE(metrics.out.find("stormbroker_upstream_warm_pings_total"), std::string::npos) << metrics.out;
}

TEST_F(KeepWarmTest, AnApiThatStatesNoKeepAliveTimeoutGetsAtMostOnePingPerInterval) {
  StartPlainStorm(30);
  harness::NginxFront front(dir_, storm_->url(), /*http2=*/false, /*keepalive_seconds=*/5);
  StartBroker(WarmConfig(front.url(), "1h", "2s"));
  CallerCall();
  auto start = std::chrono::steady_clock::now();
  long long before = Pings();
  // Callers keep calling meanwhile: their calls add no ping.
  for (int i = 0; i < 13; ++i) {
    std::this_thread::sleep_for(500ms);
    CallerCall();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  long long pings = Pings() - before;
  EXPECT_LE(pings, static_cast<long long>(seconds / 2) + 1) << "more than one ping per interval in " << seconds << " s";
  EXPECT_GE(pings, static_cast<long long>(seconds / 2) - 1) << "the interval is kept to: pings go";
}

}  // namespace

namespace {

// An API behind an HTTP/2 front server (nginx, TLS): a burst waits for the
// first connection's ALPN and shares it, instead of opening a connection
// per call; status and metrics say which protocol the account uses.
TEST_F(KeepWarmTest, ABurstToAnHttp2ApiSharesOneConnection) {
  StartPlainStorm(30);
  harness::NginxFront front(dir_, storm_->url(), /*http2=*/true, /*keepalive_seconds=*/2);
  YAML::Node config = Config();
  config["upstream"]["url"] = front.url();
  StartBroker(config);
  // Quiet: the front closed the login's connection.
  std::this_thread::sleep_for(3s);
  size_t before = front.Connections().size();
  std::vector<std::thread> burst;
  std::atomic<int> answered{0};
  for (int i = 0; i < 32; ++i) {
    burst.emplace_back([&] {
      if (broker_->Connect()->Call("prod", "Storm/Server/list", {}).ok()) ++answered;
    });
  }
  for (auto& caller : burst) caller.join();
  EXPECT_EQ(answered, 32);
  EXPECT_EQ(front.Connections().size(), before + 1) << "one new connection for the whole burst";
  EXPECT_EQ(front.Protocols(), std::set<std::string>{"HTTP/2.0"});
  harness::RunResult status = Ctl({"status"});
  EXPECT_NE(status.out.find("prod over HTTP/2"), std::string::npos) << status.out;
  harness::RunResult metrics = Ctl({"metrics"});
  EXPECT_NE(metrics.out.find(R"(stormbroker_upstream_protocol_info{account="prod",protocol="HTTP/2"} 1)"),
            std::string::npos)
      << metrics.out;
}

}  // namespace
