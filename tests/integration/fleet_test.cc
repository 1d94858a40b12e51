// Fleet mode end to end: a real three-member etcd cluster on loopback, three
// real brokers (each with its own directory, socket and config) and the
// emulator. Lease TTLs of two seconds keep failovers short.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "etcd_cluster.h"
#include "harness.h"

namespace {

using harness::Binary;
using harness::Broker;
using harness::EtcdCluster;
using harness::RunCommand;
using harness::TempDir;
using namespace std::chrono_literals;

constexpr const char* kPassword = "fleet-pw-7342";
constexpr const char* kTotpSecret = "JBSWY3DPEHPK3PXP";
constexpr int kMachines = 3;

class FleetTest : public ::testing::Test {
 protected:
  // The emulator, the fleet key, and etcd (over TLS with `etcd_certs`).
  void StartStorm(const std::string& totp_secret = "", std::vector<std::string> flags = {},
                  const std::string& etcd_certs = "") {
    storm_ = std::make_unique<harness::FakeStorm>(
        dir_, std::vector<harness::StormUser>{{"deploy-bot", kPassword, totp_secret}}, std::move(flags));
    password_file_ = dir_.Write("prod.password", std::string(kPassword) + "\n", 0600);
    key_file_ = dir_.Write("fleet.key", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0600);
    etcd_ = std::make_unique<EtcdCluster>(dir_, 3, etcd_certs);
    ASSERT_TRUE(etcd_->WaitHealthy());
    for (int i = 0; i < kMachines; ++i) machines_.push_back(std::make_unique<TempDir>());
    brokers_.resize(kMachines);
  }

  // Machine `i`'s config: b0, b1, b2 in one fleet; without `credentials` it
  // may only follow.
  YAML::Node FleetConfig(int i, bool credentials = true) const {
    YAML::Node config = harness::BasicConfig(machines_[i]->path() + "/broker.sock", *storm_, password_file_);
    if (!credentials) config["accounts"]["prod"].remove("password_file");
    config["fleet"]["name"] = "b" + std::to_string(i);
    config["fleet"]["prefix"] = "/stormbroker/test";
    config["fleet"]["key_file"] = key_file_;
    config["fleet"]["lease_ttl"] = "2s";
    for (const auto& url : etcd_->ClientUrls()) config["fleet"]["etcd"]["endpoints"].push_back(url);
    return config;
  }

  // FleetConfig with tokens that live `lifetime` and are renewed `renew_before` it.
  YAML::Node ShortLived(int i, const std::string& lifetime, const std::string& renew_before) const {
    YAML::Node config = FleetConfig(i);
    config["accounts"]["prod"]["max_lifetime"] = lifetime;
    config["accounts"]["prod"]["renew_before"] = renew_before;
    return config;
  }

  void StartBroker(int i, const YAML::Node& config) {
    brokers_[i] = std::make_unique<Broker>(*machines_[i], config);
  }
  void StartAll(const std::function<YAML::Node(int)>& config, const std::string& state = "active") {
    for (int i = 0; i < kMachines; ++i) StartBroker(i, config(i));
    for (int i = 0; i < kMachines; ++i) ASSERT_TRUE(brokers_[i]->WaitForState(state)) << Logs();
  }
  // Every machine's log, for a failure's message.
  std::string Logs() const {
    std::string all;
    for (int i = 0; i < kMachines; ++i) {
      if (brokers_[i]) all += "--- b" + std::to_string(i) + "\n" + brokers_[i]->Log();
    }
    return all;
  }

  // Account prod as machine `i` sees it.
  stormbroker::client::AccountInfo Prod(int i) const {
    auto accounts = brokers_[i]->Connect()->ListAccounts();
    EXPECT_TRUE(accounts.ok()) << accounts.error().message;
    return accounts.ok() && !accounts->empty() ? accounts->front() : stormbroker::client::AccountInfo{};
  }
  // The machine that leads prod, when all running machines agree; -1 otherwise.
  int Leader() const {
    int leader = -1;
    std::string named;
    for (int i = 0; i < kMachines; ++i) {
      if (!brokers_[i] || !brokers_[i]->process().Running()) continue;
      auto prod = Prod(i);
      if (prod.fleet_role == "leader") {
        if (leader >= 0) return -1;
        leader = i;
      }
      if (prod.fleet_leader.empty() || (!named.empty() && prod.fleet_leader != named)) return -1;
      named = prod.fleet_leader;
    }
    return leader >= 0 && named == "b" + std::to_string(leader) ? leader : -1;
  }
  int WaitForLeader(std::chrono::milliseconds timeout = 10s) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (int leader = Leader(); leader >= 0) return leader;
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }
  stormbroker::client::Outcome<stormbroker::client::CallResult> Ping(int i) const {
    return brokers_[i]->Connect()->Call("prod", "Utilities/Info/ping", nlohmann::json::object(), 5s);
  }
  // A gauge of machine `i`'s metrics (-1 when absent).
  double Gauge(int i, const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    auto metrics = brokers_[i]->Connect()->GetMetrics();
    EXPECT_TRUE(metrics.ok());
    if (!metrics.ok()) return -1;
    for (const auto& sample : metrics->samples) {
      if (sample.name == name && sample.labels == labels) return sample.value;
    }
    return -1;
  }
  nlohmann::json Status(int i) const {
    auto result = RunCommand({Binary("stormctl"), "--socket", brokers_[i]->socket_path(), "status", "--output", "json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out, nullptr, false);
  }
  // Hammers every running machine at once for `duration`, running `meanwhile`;
  // the failed calls of each machine.
  std::vector<std::vector<std::string>> HammerAll(std::chrono::milliseconds duration,
                                                  const std::function<void()>& meanwhile, std::atomic<int>* ok) {
    std::vector<std::vector<std::string>> failures(kMachines);
    std::vector<std::thread> threads;
    for (int i = 0; i < kMachines; ++i) {
      if (!brokers_[i]) continue;
      threads.emplace_back([&, i] { failures[i] = harness::Hammer(*brokers_[i], 3, duration, ok); });
    }
    meanwhile();
    for (auto& thread : threads) thread.join();
    return failures;
  }

  TempDir dir_;
  std::unique_ptr<harness::FakeStorm> storm_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<TempDir>> machines_;
  std::vector<std::unique_ptr<Broker>> brokers_;
  std::string password_file_, key_file_;
};

TEST_F(FleetTest, OneLoginServesTheFleetAndTheTokenNeverReachesEtcdInTheClear) {
  StartStorm();
  // b2 holds no password: it can only follow.
  StartAll([&](int i) { return FleetConfig(i, /*credentials=*/i != 2); });
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  EXPECT_NE(leader, 2) << "a machine without credentials never leads";
  for (int i = 0; i < kMachines; ++i) {
    auto ping = Ping(i);
    ASSERT_TRUE(ping.ok()) << "b" << i << ": " << ping.error().message;
    EXPECT_FALSE(ping->api_error);
    EXPECT_EQ(Prod(i).fleet_role, i == leader ? "leader" : "follower");
  }
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "one login for the whole fleet";
  EXPECT_EQ(storm_->Count("account/auth/token", "token"), 0) << "no keep-alive was needed yet";

  // Members are learnt from etcd's watch: allow it a moment.
  nlohmann::json status = Status(2);
  for (int tries = 0; tries < 30 && status["fleet"]["members"].size() < 3; ++tries) {
    std::this_thread::sleep_for(100ms);
    status = Status(2);
  }
  ASSERT_TRUE(status.contains("fleet")) << status.dump();
  EXPECT_EQ(status["fleet"]["name"], "b2");
  EXPECT_EQ(status["fleet"]["connected"], true);
  EXPECT_EQ(status["fleet"]["members"], nlohmann::json({"b0", "b1", "b2"}));

  auto tokens = storm_->IssuedTokens();
  ASSERT_EQ(tokens.size(), 1u);
  std::string dump = etcd_->Dump("/");
  EXPECT_NE(dump.find("/stormbroker/test/token/prod"), std::string::npos) << dump;
  std::string data = etcd_->DataFiles();
  ASSERT_GT(data.size(), 0u);
  EXPECT_NE(data.find("/stormbroker/test/token/prod"), std::string::npos) << "the scan reads etcd's data";
  std::string logs = Logs();
  for (const auto& token : tokens) {
    EXPECT_EQ(dump.find(token), std::string::npos) << "the token is in etcd in the clear";
    EXPECT_EQ(data.find(token), std::string::npos) << "the token is in etcd's data directory in the clear";
    EXPECT_EQ(logs.find(token), std::string::npos) << "the token is in a broker's log";
  }
  EXPECT_EQ(logs.find(kPassword), std::string::npos);
}

TEST_F(FleetTest, OverTlsOnlyAMachineWithAClientCertificateOfTheFleetsCaJoins) {
  std::string certs = dir_.path() + "/certs";
  StartStorm("", {}, certs);
  auto secure = [&](int i, const std::string& cert, const std::string& key) {
    YAML::Node config = FleetConfig(i);
    config["fleet"]["etcd"]["ca_file"] = certs + "/ca.pem";
    config["fleet"]["etcd"]["cert_file"] = cert;
    config["fleet"]["etcd"]["key_file"] = key;
    return config;
  };
  StartBroker(0, secure(0, certs + "/client.pem", certs + "/client.key"));
  StartBroker(1, secure(1, certs + "/client.pem", certs + "/client.key"));
  // A server's certificate is not one for a client: etcd turns it away.
  StartBroker(2, secure(2, certs + "/server.pem", certs + "/server.key"));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(brokers_[i]->WaitForState("active")) << Logs();
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(Ping(i).ok()) << "b" << i;
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1);
  std::this_thread::sleep_for(1s);
  nlohmann::json refused = Status(2);
  EXPECT_EQ(refused["fleet"]["connected"], false) << refused.dump();
  EXPECT_NE(Prod(2).state, "active") << "b2 never got the token";
}

TEST_F(FleetTest, LeaderKilledUnderLoadCostsTheSurvivorsNothing) {
  StartStorm();
  StartAll([&](int i) { return FleetConfig(i); });
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  std::chrono::milliseconds failover{-1};
  std::atomic<int> ok{0};
  auto failures = HammerAll(6s, [&] {
    std::this_thread::sleep_for(1500ms);
    brokers_[leader]->process().Stop(SIGKILL);
    auto killed = std::chrono::steady_clock::now();
    int next = WaitForLeader(8s);
    if (next >= 0) failover = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed);
  }, &ok);
  for (int i = 0; i < kMachines; ++i) {
    if (i == leader) continue;
    EXPECT_TRUE(failures[i].empty()) << "b" << i << ": " << failures[i].size() << " failed calls, first: "
                                     << failures[i].front();
  }
  EXPECT_GT(ok.load(), 100);
  ASSERT_GE(failover.count(), 0) << "no new leader";
  EXPECT_LE(failover, 3s) << "a new leader within the lease TTL (2 s) and a second";
  std::cout << "failover took " << failover.count() << " ms\n";
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "the new leader took the token over";
  EXPECT_EQ(storm_->IssuedTokens().size(), 1u);
}

TEST_F(FleetTest, OnePasscodeTypedOnAFollowerServesEveryMachine) {
  StartStorm(kTotpSecret);
  StartAll([&](int i) { return harness::With(FleetConfig(i), {"accounts", "prod", "two_factor"}, "prompt"); },
           "needs-passcode");
  int follower = -1;
  for (int i = 0; i < kMachines && follower < 0; ++i) {
    if (Prod(i).fleet_role == "follower") follower = i;
  }
  ASSERT_GE(follower, 0);
  ASSERT_GE(WaitForLeader(), 0);
  while (std::time(nullptr) % 30 >= 25) std::this_thread::sleep_for(200ms);
  auto code = RunCommand({"/usr/bin/oathtool", "--totp", "-b", kTotpSecret});
  ASSERT_EQ(code.exit_code, 0);
  auto login = RunCommand({Binary("stormctl"), "--socket", brokers_[follower]->socket_path(), "login", "prod",
                           "--passcode-stdin"},
                          code.out.substr(0, 6) + "\n");
  EXPECT_EQ(login.exit_code, 0) << login.out << login.err;
  for (int i = 0; i < kMachines; ++i) {
    ASSERT_TRUE(brokers_[i]->WaitForState("active", 5s)) << brokers_[i]->Log();
    auto ping = Ping(i);
    EXPECT_TRUE(ping.ok() && !ping->api_error) << "b" << i;
  }
  EXPECT_EQ(storm_->Count("account/auth/token", "password+passcode"), 1) << "one passcode for the fleet";
  for (int i = 0; i < kMachines; ++i) {
    EXPECT_EQ(brokers_[i]->Log().find(code.out.substr(0, 6)), std::string::npos) << "the passcode in b" << i << "'s log";
  }
  EXPECT_EQ(etcd_->Dump("/").find(code.out.substr(0, 6)), std::string::npos) << "the passcode in etcd in the clear";
}

TEST_F(FleetTest, RenewalUnderLoadExpiresTheOldTokenOnceAndFailsNoCall) {
  StartStorm("", {"--hard-limit", "20"});
  StartAll([&](int i) {
    YAML::Node config = ShortLived(i, "20s", "12s");
    config["upstream"]["timeout"] = "2s";
    config["fleet"]["retire_grace"] = "3s";
    return config;
  });
  std::atomic<int> ok{0};
  auto failures = HammerAll(13s, [] {}, &ok);
  for (int i = 0; i < kMachines; ++i) {
    EXPECT_TRUE(failures[i].empty()) << "b" << i << ": " << failures[i].size() << " failed calls, first: "
                                     << failures[i].front();
  }
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2) << "one first login, one renewal, for the fleet";
  auto deadline = std::chrono::steady_clock::now() + 6s;
  while (storm_->Count("account/auth/expiretoken", "token") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(storm_->Count("account/auth/expiretoken", "token"), 1) << "the old token expired upstream exactly once";
  for (int i = 0; i < kMachines; ++i) {
    auto ping = Ping(i);
    EXPECT_TRUE(ping.ok() && !ping->api_error) << "b" << i << " after the old token died";
  }
}

TEST_F(FleetTest, ATokenTheApiRejectsOnAFollowerIsReplacedByTheLeader) {
  StartStorm();
  StartAll([&](int i) { return FleetConfig(i); });
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  int follower = (leader + 1) % kMachines;
  ASSERT_EQ(storm_->Revoke(), 1);
  // The follower finds out first; the leader, idle, would not for half an hour.
  (void)Ping(follower);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  bool served = false;
  while (!served && std::chrono::steady_clock::now() < deadline) {
    auto ping = Ping(follower);
    served = ping.ok() && !ping->api_error;
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served) << Logs();
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2) << "one new login for the fleet";
  EXPECT_EQ(storm_->IssuedTokens().size(), 2u);
}

TEST_F(FleetTest, EtcdOutagesLeaveCallsRunningAndTheFleetRejoinsWithoutALogin) {
  StartStorm();
  StartAll([&](int i) { return FleetConfig(i); });
  ASSERT_GE(WaitForLeader(), 0);
  std::atomic<int> ok{0};
  // One member down: a quorum remains, nothing changes.
  auto failures = HammerAll(4s, [&] { etcd_->Stop(0); }, &ok);
  for (int i = 0; i < kMachines; ++i) EXPECT_TRUE(failures[i].empty()) << "b" << i << ": " << failures[i].front();
  for (int i = 0; i < kMachines; ++i) EXPECT_EQ(Status(i)["fleet"]["connected"], true) << "b" << i;
  ASSERT_GE(WaitForLeader(1s), 0);

  // Every member down: each machine serves with the token it has.
  failures = HammerAll(5s, [&] {
    etcd_->Stop(1);
    etcd_->Stop(2);
  }, &ok);
  for (int i = 0; i < kMachines; ++i) EXPECT_TRUE(failures[i].empty()) << "b" << i << ": " << failures[i].front();
  for (int i = 0; i < kMachines; ++i) {
    nlohmann::json status = Status(i);
    EXPECT_EQ(status["fleet"]["connected"], false) << "b" << i;
    EXPECT_NE(status["fleet"]["detail"].get<std::string>().find("etcd"), std::string::npos) << status.dump();
    EXPECT_EQ(status["accounts"][0]["fleet_role"], "stranded") << status.dump();
    EXPECT_EQ(Gauge(i, "stormbroker_fleet_connected"), 0);
    EXPECT_EQ(Gauge(i, "stormbroker_fleet_role", {{"account", "prod"}, {"role", "stranded"}}), 1);
  }

  // etcd back: the fleet elects again and goes on with the same token.
  for (int i = 0; i < 3; ++i) etcd_->Start(i);
  ASSERT_TRUE(etcd_->WaitHealthy());
  EXPECT_GE(WaitForLeader(15s), 0);
  for (int i = 0; i < kMachines; ++i) {
    EXPECT_EQ(Status(i)["fleet"]["connected"], true) << "b" << i;
    EXPECT_EQ(Gauge(i, "stormbroker_fleet_connected"), 1);
  }
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "no login across the outage";
  for (int i = 0; i < kMachines; ++i) EXPECT_TRUE(Ping(i).ok()) << "b" << i;
}

TEST_F(FleetTest, AMachineRestartedWhileEtcdIsDownServesWithTheTokenItKept) {
  StartStorm();
  YAML::Node config = FleetConfig(0);
  config["state_dir"] = machines_[0]->path() + "/state";
  StartBroker(0, config);
  ASSERT_TRUE(brokers_[0]->WaitForState("active")) << Logs();
  brokers_[0].reset();  // SIGTERM: in a fleet the token is not expired
  for (int i = 0; i < 3; ++i) etcd_->Stop(i);
  StartBroker(0, config);
  ASSERT_TRUE(brokers_[0]->WaitForState("active")) << Logs();
  auto ping = Ping(0);
  EXPECT_TRUE(ping.ok() && !ping->api_error);
  EXPECT_EQ(Prod(0).fleet_role, "stranded");
  EXPECT_EQ(Status(0)["fleet"]["connected"], false);
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "no login without etcd";
}

TEST_F(FleetTest, CutOffFromEtcdNoMachineUsesATokenPastItsHardLimit) {
  StartStorm("", {"--hard-limit", "6"});
  StartAll([&](int i) { return ShortLived(i, "6s", "2s"); });
  for (int i = 0; i < 3; ++i) etcd_->Stop(i);
  std::this_thread::sleep_for(7s);
  for (int i = 0; i < kMachines; ++i) {
    auto ping = Ping(i);
    ASSERT_FALSE(ping.ok()) << "b" << i << " called with a token past its hard limit";
    EXPECT_EQ(ping.error().code, stormbroker::client::ErrorCode::kFailedPrecondition) << ping.error().message;
    EXPECT_NE(ping.error().message.find("etcd"), std::string::npos) << ping.error().message;
  }
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "no machine logged in on its own";
}

}  // namespace
