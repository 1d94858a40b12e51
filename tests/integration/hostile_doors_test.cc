// The HTTP door, the metrics endpoint and the fleet, attacked as a hostile
// local user on a shared build server would: each test plays one attack on
// the real daemon and checks the refusal the broker owes it.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "hostile_fixture.h"

namespace {

using namespace hostile;

class HostileDoorsTest : public HostileCallerTest {
 protected:
  void SetUp() override {
    HostileCallerTest::SetUp();
    http_socket_ = dir_.path() + "/run/http.sock";
    port_ = harness::FreePort();
  }
  // HostileCallerTest's accounts and policy, with both HTTP doors.
  YAML::Node DoorConfig(const std::string& host = "127.0.0.1") const {
    YAML::Node config = Config();
    config["listen"]["http_socket"] = http_socket_;
    config["listen"]["http"] = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                               std::to_string(port_);
    return config;
  }
  // curl POSTing the file `body` to `path` on the Unix-socket door (or the
  // TCP door, with `tcp`) as `as`, with `args` first; the status and body.
  std::pair<int, std::string> Curl(const std::string& path, const std::string& body_file, bool tcp,
                                   std::optional<uid_t> as, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-u", "prod:x"};
    if (!tcp) argv.insert(argv.end(), {"--unix-socket", http_socket_});
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--data-binary", "@" + body_file,
                             (tcp ? "http://127.0.0.1:" + std::to_string(port_) : std::string("http://broker")) + path});
    auto result = RunCommand(argv, "", as);
    size_t newline = result.out.rfind('\n');
    if (newline == std::string::npos) return {0, result.err};
    return {std::atoi(result.out.c_str() + newline + 1), result.out.substr(0, newline)};
  }

  std::string http_socket_;
  int port_ = 0;
};

// 1. A client that sends a request and closes at once leaves an orphaned
// socket, which sock_diag reports as uid 0 with no inode: the broker must
// never take that for root. The daemon is stopped while the connections
// are made, so that every one of them is accepted as an orphan.
TEST_F(HostileDoorsTest, SendAndCloseOnTheTcpDoorNeverRunsAsRoot) {
  for (const std::string host : {"127.0.0.1", "::1"}) {
    SCOPED_TRACE(host);
    Start(DoorConfig(host));
    long lists_before = storm_->Count("storm/server/list", "token");
    kill(broker_->process().pid(), SIGSTOP);
    // nobody has no rule for staging; root may do anything there.
    HostileProcess attacker(dir_, kNobody,
                            {"send-and-close", host, std::to_string(port_), "staging", "Storm/Server/list", "20"});
    EXPECT_EQ(attacker.Line(), "connected");
    EXPECT_EQ(attacker.Next(), 20);
    kill(broker_->process().pid(), SIGCONT);
    int refused = 0;
    EXPECT_TRUE(harness::Eventually([&] {
      refused = 0;
      for (const auto& r : Audit()) refused += r.value("rpc", "") == "connect" && !r.contains("uid");
      return refused == 20;
    })) << refused << " refusals of unidentified callers audited\n" << broker_->Log();
    EXPECT_EQ(storm_->Count("storm/server/list", "token"), lists_before) << "a call ran as another uid";
    for (const auto& r : Audit()) {
      EXPECT_FALSE(r.value("listener", "") == "http-tcp" && r.value("uid", -1) == 0) << r.dump();
      if (r.value("rpc", "") == "connect" && !r.contains("uid")) {
        EXPECT_NE(r.value("detail", "").find("with no owner"), std::string::npos) << r.dump();
      }
    }
    EXPECT_TRUE(broker_->process().Running());
    broker_.reset();
    std::filesystem::remove(audit_);
  }
}

// 1. Identified at accept, gone by the time its request is read: the
// request is not run (its answer would go nowhere, and the socket's owner
// can no longer be vouched for).
TEST_F(HostileDoorsTest, ARequestWhoseSenderLeftBeforeItWasReadIsNotRun) {
  Start(DoorConfig());
  long pings_before = storm_->Count("utilities/info/ping", "token");
  // Connected (and accepted) first; the request is sent, and the socket
  // closed, while the daemon is stopped.
  HostileProcess sender(dir_, kNobody,
                        {"send-and-close", "127.0.0.1", std::to_string(port_), "prod", "Utilities/Info/ping", "5", "1"});
  EXPECT_EQ(sender.Line(), "connected");
  std::this_thread::sleep_for(500ms);  // accepted meanwhile
  kill(broker_->process().pid(), SIGSTOP);
  EXPECT_EQ(sender.Next(), 5);
  kill(broker_->process().pid(), SIGCONT);
  int refused = 0;
  EXPECT_TRUE(harness::Eventually([&] {
    refused = 0;
    for (const auto& r : Audit()) refused += r.value("rpc", "") == "connect" && !r.contains("uid");
    return refused == 5;
  })) << refused << "\n" << broker_->Log();
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), pings_before);
}

// 2. Nesting 100,000 deep is refused before anything recursive runs, on
// both doors and in both encodings, and the daemon lives on.
TEST_F(HostileDoorsTest, DeepJsonAndYamlAreRefusedAndTheDaemonLives) {
  Start(DoorConfig());
  const size_t depth = 100'000;
  std::string deep_json = dir_.Write(
      "deep.json", R"({"params":{"a":)" + std::string(depth, '[') + std::string(depth, ']') + "}}");
  std::string deep_yaml = dir_.Write("deep.yaml", "params:\n  a: " + std::string(depth, '[') + std::string(depth, ']'));
  for (bool tcp : {false, true}) {
    auto json = Curl("/v1/Utilities/Info/ping", deep_json, tcp, kNobody);
    EXPECT_EQ(json.first, 400) << json.second;
    EXPECT_NE(json.second.find("nested deeper than 64"), std::string::npos) << json.second;
    auto yaml = Curl("/v1/Utilities/Info/ping.yaml", deep_yaml, tcp, kNobody);
    EXPECT_EQ(yaml.first, 400) << yaml.second;
    ASSERT_TRUE(broker_->process().Running()) << broker_->Log();
  }
  std::string ok = dir_.Write("ok.json", R"({"params":{"a":[[[1]]]}})");
  EXPECT_EQ(Curl("/v1/Utilities/Info/ping", ok, true, kNobody).first, 200);
}

}  // namespace
