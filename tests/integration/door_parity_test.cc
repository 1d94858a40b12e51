// Every door refuses and answers alike: the same table of requests goes
// through each real door of one real daemon (gRPC, HTTP on the Unix socket,
// HTTP on loopback TCP, and a tunnel of the HTTPS proxy door), and each
// leaves the same audit record (decision, outcome, method) and counts the
// same refusal in the metrics, by its own door's name. A door that skipped
// a step of the core (the account, the policy, the reserved methods, the
// params' bounds, the caller's deadline on a shared call) would leave a
// different record, or none.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "harness.h"

namespace {

using harness::RunCommand;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPassword = "parity-pw-4Hd";
constexpr const char* kDoors[] = {"grpc", "http-unix", "http-tcp", "https-proxy"};

// What a door answered: its status (gRPC's code name, or HTTP's status).
struct Answer {
  bool ok = false;
  std::string said;
};

// One row of the table: a request, and what the core decides of it.
struct Case {
  std::string name;
  std::string account;
  std::string method;          // as the caller sends it (the HTTP doors percent-encode nothing)
  json params;                 // an object
  std::string decision;        // the audit record's
  std::string outcome;         // the audit record's ("ok", "failed")
  std::string refusal_reason;  // the metric's reason label; empty when none is counted
  std::optional<std::chrono::milliseconds> timeout;
  // gRPC cannot carry the request (proto3 strings are UTF-8): its codec
  // refuses it before any handler, so the core never sees it.
  bool grpc_cannot_carry = false;
};

class DoorParityTest : public harness::BrokerTest {
 protected:
  void SetUp() override {
    StartStorm(kPassword);
    http_socket_ = dir_.path() + "/run/http.sock";
    audit_ = dir_.path() + "/audit.jsonl";
    ca_ = dir_.path() + "/proxy-ca.pem";
    tcp_port_ = harness::FreePort();
    proxy_port_ = harness::FreePort();
    metrics_port_ = harness::FreePort();
    YAML::Node config = Config();
    config["audit"]["file"] = audit_;
    config["listen"]["http_socket"] = http_socket_;
    config["listen"]["http"] = "127.0.0.1:" + std::to_string(tcp_port_);
    config["listen"]["https_proxy"]["address"] = "127.0.0.1:" + std::to_string(proxy_port_);
    config["listen"]["https_proxy"]["ca_cert_file"] = ca_;
    config["listen"]["https_proxy"]["ca_key_file"] = dir_.path() + "/proxy-ca.key";
    config["metrics"]["listen"] = "127.0.0.1:" + std::to_string(metrics_port_);
    // Requests up to 1 MiB are read, params up to 32 KiB accepted: 300 KiB
    // of params reach every door's reader and are the core's to refuse.
    config["limits"]["max_request_size"] = "1MiB";
    config["limits"]["max_params_size"] = "32KiB";
    config["cache"] = YAML::Load(R"([{methods: [Storm/Server/list], ttl: 60s}])");
    config["policy"] = YAML::Load(R"([
        {users: [root], accounts: [prod], methods: ["Utilities/*", Storm/Server/list, "Account/Auth/*"]},
        {users: [root], metrics: true}])");
    StartBroker(config);
    ASSERT_TRUE(harness::Eventually([&] { return broker_->Log().find("HTTPS proxy door on") != std::string::npos; }))
        << broker_->Log();
  }

  // `c` through `door`.
  Answer Send(const std::string& door, const Case& c) {
    if (door == "grpc") {
      auto outcome = broker_->Connect()->Call(c.account, c.method, c.params, c.timeout.value_or(60s));
      if (!outcome.ok()) return {false, std::to_string(static_cast<int>(outcome.error().code))};
      return {!outcome->api_error, outcome->api_error ? outcome->api_error->error_class : "ok"};
    }
    std::string body = dir_.Write("body.json", json{{"params", c.params}}.dump());
    std::string path;  // the method in the URL, bytes that are not printable ASCII percent-encoded
    for (unsigned char byte : c.method) {
      static const char* kHex = "0123456789ABCDEF";
      if (byte > 0x20 && byte < 0x7f) path += static_cast<char>(byte);
      else path += std::string("%") + kHex[byte >> 4] + kHex[byte & 15];
    }
    std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}",
                                     "-u", c.account + ":x", "--data-binary", "@" + body};
    if (c.timeout) {
      argv.insert(argv.end(), {"-H", "X-Stormbroker-Timeout: " + std::to_string(c.timeout->count() / 1000.0)});
    }
    if (door == "http-unix") {
      argv.insert(argv.end(), {"--unix-socket", http_socket_, "http://broker/v1/" + path});
    } else if (door == "http-tcp") {
      argv.push_back("http://127.0.0.1:" + std::to_string(tcp_port_) + "/v1/" + path);
    } else {
      argv.insert(argv.end(), {"--proxy", "http://127.0.0.1:" + std::to_string(proxy_port_), "--cacert", ca_,
                               "https://api.stormondemand.com/v1/" + path});
    }
    auto result = RunCommand(argv);
    // The API's errors come in its own shape, some with status 200.
    size_t newline = result.out.rfind('\n');
    std::string status = newline == std::string::npos ? "" : result.out.substr(newline + 1);
    return {status == "200" && result.out.find("\"error_class\"") == std::string::npos, result.out};
  }

  // The audit records so far, once the writer has written the last one
  // (each door's record of `c` is the last Call record through it).
  std::vector<json> Audit() {
    std::vector<json> records;
    std::ifstream in(audit_);
    for (std::string line; std::getline(in, line);) records.push_back(json::parse(line));
    return records;
  }

  // The Call record `door` wrote after the first `skip` records.
  std::optional<json> RecordOf(const std::string& door, size_t skip) {
    std::optional<json> found;
    harness::Eventually(
        [&] {
          auto records = Audit();
          for (size_t i = skip; i < records.size(); ++i) {
            if (records[i].value("listener", "") == door && records[i].value("rpc", "") == "Call") found = records[i];
          }
          return found.has_value();
        },
        5s);
    return found;
  }

  double Refusals(const std::string& door, const std::string& reason) {
    auto scraped = RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port_) + "/metrics"});
    std::string series = "stormbroker_caller_refusals_total{door=\"" + door + "\",reason=\"" + reason + "\"} ";
    size_t at = scraped.out.find(series);
    return at == std::string::npos ? 0 : std::stod(scraped.out.substr(at + series.size()));
  }

  // Each case through each door: the same record and the same count.
  void ExpectAlike(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      for (const std::string door : kDoors) {
        SCOPED_TRACE(c.name + " through " + door);
        size_t before = Audit().size();
        double refused_before = c.refusal_reason.empty() ? 0 : Refusals(door, c.refusal_reason);
        Answer answer = Send(door, c);
        if (door == "grpc" && c.grpc_cannot_carry) {
          EXPECT_FALSE(answer.ok);
          Send(door, {"", c.account, "Utilities/Info/ping", json::object(), "", "", "", std::nullopt});
          auto next = RecordOf(door, before);  // the ping's: the writer keeps order
          ASSERT_TRUE(next);
          EXPECT_EQ(next->value("method", ""), "Utilities/Info/ping") << "the core saw what gRPC cannot carry";
          continue;
        }
        EXPECT_EQ(answer.ok, c.outcome == "ok") << answer.said;
        auto record = RecordOf(door, before);
        ASSERT_TRUE(record) << "no audit record";
        EXPECT_EQ(record->value("decision", ""), c.decision) << record->dump();
        EXPECT_EQ(record->value("outcome", ""), c.outcome) << record->dump();
        EXPECT_EQ(record->value("account", ""), c.account) << record->dump();
        if (!c.refusal_reason.empty()) {
          EXPECT_EQ(Refusals(door, c.refusal_reason), refused_before + 1) << "the refusal's count";
        }
      }
    }
  }

  std::string http_socket_, audit_, ca_;
  int tcp_port_ = 0, proxy_port_ = 0, metrics_port_ = 0;
};

TEST_F(DoorParityTest, EveryDoorRefusesAndAnswersAlike) {
  json big = {{"notes", std::string(300 << 10, 'x')}};
  ExpectAlike({
      {"an answered call", "prod", "Utilities/Info/ping", json::object(), "allow", "ok", "", std::nullopt},
      {"an unknown account", "nosuch", "Utilities/Info/ping", json::object(), "invalid", "failed", "invalid",
       std::nullopt},
      {"no rule", "prod", "Storm/Server/destroy", json::object(), "deny", "failed", "policy", std::nullopt},
      // (Account/Auth/token and expireToken are the HTTP doors' token dance,
      // answered there by design: any other Account/Auth method is refused.)
      {"a reserved method, even with a rule", "prod", "Account/Auth/verify", json::object(), "deny", "failed",
       "policy", std::nullopt},
      {"300 KiB of params", "prod", "Utilities/Info/ping", big, "invalid", "failed", "invalid", std::nullopt},
      {"an encoding the API does not speak", "prod", "Utilities/Info/ping.xml", json::object(), "invalid", "failed",
       "invalid", std::nullopt},
      {"caller bytes that are not UTF-8", "prod", "Utilities/Info/\xff\xfe", json::object(), "invalid", "failed",
       "invalid", std::nullopt, /*grpc_cannot_carry=*/true},
  });
}

// A read shared with a slower caller ends at each caller's own deadline,
// through every door.
TEST_F(DoorParityTest, ADeadlineThatPassesWhileTheCallIsSharedEndsItOnEveryDoor) {
  int read = 0;
  for (const std::string door : kDoors) {
    SCOPED_TRACE(door);
    // A read of its own for each door (another page): nothing stored answers it.
    json params = {{"page_num", ++read}};
    storm_->Arm(R"({"kind": "delay", "delay_ms": 3000, "method": "storm/server/list"})");
    // A patient caller starts the read; the door's caller joins it with 1 s to live.
    std::thread first([&] { EXPECT_TRUE(broker_->Connect()->Call("prod", "Storm/Server/list", params, 10s).ok()); });
    harness::JoinAtEnd join{first};
    ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("delay", 0) >= read; }));
    size_t before = Audit().size();
    auto started = std::chrono::steady_clock::now();
    Answer answer = Send(door, {"shared", "prod", "Storm/Server/list", params, "allow", "failed", "", 1s});
    auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_FALSE(answer.ok) << answer.said;
    EXPECT_LT(waited, 2500ms) << "waited for the shared call, not its own deadline";
    auto record = RecordOf(door, before);
    ASSERT_TRUE(record);
    EXPECT_EQ(record->value("decision", ""), "allow") << record->dump();
    EXPECT_EQ(record->value("outcome", ""), "failed") << record->dump();
    EXPECT_NE(record->value("detail", "").find("deadline"), std::string::npos) << record->dump();
  }
}

}  // namespace
