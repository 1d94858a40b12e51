// Fleet mode end to end: a real three-member etcd cluster on loopback, three
// real brokers (each with its own directory, socket and config) and the
// emulator. Lease TTLs of two seconds keep failovers short.

#include <gtest/gtest.h>

#include "fleet_fixture.h"

namespace {

using namespace fleet;

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
  nlohmann::json status;
  harness::Eventually([&] { return (status = Status(2))["fleet"]["members"].size() == 3; }, 3s);
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
  harness::Eventually([&] { return storm_->Count("account/auth/expiretoken", "token") > 0; }, 6s);
  std::this_thread::sleep_for(500ms);  // a second expiry, were there one, would land now
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
  EXPECT_TRUE(harness::Eventually(
      [&] {
        auto ping = Ping(follower);
        return ping.ok() && !ping->api_error;
      },
      5s))
      << Logs();
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
