// The fleet tests' fixture: a real three-member etcd cluster on loopback,
// three real brokers (each with its own directory, socket and config) and
// the emulator (fleet_test.cc: the fleet at work; fleet_hostile_test.cc:
// the fleet attacked through etcd).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "etcd_cluster.h"
#include "harness.h"

namespace fleet {

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
    // The test cluster speaks plain HTTP on loopback unless given certificates.
    if (etcd_->ClientUrls().front().rfind("http://", 0) == 0) config["fleet"]["etcd"]["insecure"] = "true";
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
    int leader = -1;
    harness::Eventually([&] { return (leader = Leader()) >= 0; }, timeout);
    return leader;
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

}  // namespace fleet
