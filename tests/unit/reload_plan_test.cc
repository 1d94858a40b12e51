#include "config/reload_plan.h"

#include <gtest/gtest.h>

#include <functional>

namespace stormbroker {
namespace {

using std::chrono::milliseconds;

Config Running() {
  Config config;
  config.path = "/etc/stormbroker/stormbroker.yaml";
  config.listen.socket_path = "/run/stormbroker/broker.sock";
  config.upstream.url = "https://api.example/v1";
  AccountConfig prod;
  prod.name = "prod";
  prod.username = "deploy";
  prod.password_file = "/etc/stormbroker/prod.password";
  prod.password = Secret("hunter2");
  config.accounts.emplace("prod", std::move(prod));
  PolicyRule rule;
  rule.line = 10;
  rule.uids = {1000};
  rule.accounts = {"prod"};
  rule.methods = {"*"};
  config.policy.push_back(rule);
  return config;
}

struct Change {
  std::string key;
  std::function<void(Config&)> edit;
};

// Every key of the file: a change to each is either applied or named as
// needing a restart, and nothing else is reported.
const std::vector<Change> kNeedsRestart = {
    {"state_dir", [](Config& c) { c.state_dir = "/var/lib/other"; }},
    {"listen.socket", [](Config& c) { c.listen.socket_path = "/run/other.sock"; }},
    {"listen.mode", [](Config& c) { c.listen.mode = 0600; }},
    {"listen.group", [](Config& c) { c.listen.group = 4242; }},
    {"listen.http_socket", [](Config& c) { c.listen.http_socket = "/run/http.sock"; }},
    {"listen.http", [](Config& c) { c.listen.http = TcpAddress{"127.0.0.1", 8080}; }},
    {"listen.http_tls.cert_file", [](Config& c) { c.listen.http_tls_cert_file = "/etc/door.pem"; }},
    {"listen.http_tls.key_file", [](Config& c) { c.listen.http_tls_key_file = "/etc/door.key"; }},
    {"upstream.url", [](Config& c) { c.upstream.url = "https://other/v1"; }},
    {"upstream.ca_file", [](Config& c) { c.upstream.ca_file = "/etc/ssl/other.pem"; }},
    {"upstream.timeout", [](Config& c) { c.upstream.timeout = milliseconds(5000); }},
    {"upstream.max_connections", [](Config& c) { c.upstream.max_connections = 3; }},
    {"upstream.passcode_header", [](Config& c) { c.upstream.passcode_header = "X-Other"; }},
    {"upstream.max_response_size", [](Config& c) { c.upstream.max_response_bytes = 1 << 20; }},
    {"audit.file", [](Config& c) { c.audit.file = "/var/log/other"; }},
    {"audit.queue", [](Config& c) { c.audit.queue = 5; }},
    {"audit.queue_bytes", [](Config& c) { c.audit.queue_bytes = 5 << 20; }},
    {"audit.refusal_rate", [](Config& c) { c.audit.refusal_rate = 1; }},
    {"audit.refusal_burst", [](Config& c) { c.audit.refusal_burst = 2; }},
    {"limits.max_request_size", [](Config& c) { c.limits.max_request_bytes = 8 << 10; }},
    {"limits.connections", [](Config& c) { c.limits.connections = 10; }},
    {"limits.connections_per_uid", [](Config& c) { c.limits.connections_per_uid = 10; }},
    {"limits.calls_per_connection", [](Config& c) { c.limits.calls_per_connection = 10; }},
    {"limits.calls_per_uid", [](Config& c) { c.limits.calls_per_uid = 10; }},
    {"limits.idle_timeout", [](Config& c) { c.limits.idle_timeout = milliseconds(1000); }},
    {"limits.first_request_timeout", [](Config& c) { c.limits.first_request_timeout = milliseconds(1000); }},
    {"limits.reserved_descriptors", [](Config& c) { c.limits.reserved_descriptors = 64; }},
    {"accounts.prod.username", [](Config& c) { c.accounts.at("prod").username = "other"; }},
    {"accounts.prod.password_file", [](Config& c) { c.accounts.at("prod").password_file = "/etc/other"; }},
    {"accounts.prod.password", [](Config& c) { c.accounts.at("prod").password = Secret("changed"); }},
    {"accounts.prod.two_factor", [](Config& c) { c.accounts.at("prod").two_factor = TwoFactor::kPrompt; }},
    {"accounts.prod.totp_secret_file", [](Config& c) { c.accounts.at("prod").totp_key = Secret("key"); }},
    {"accounts.prod.token_timeout", [](Config& c) { c.accounts.at("prod").token_timeout = milliseconds(60000); }},
    {"accounts.prod.max_lifetime", [](Config& c) { c.accounts.at("prod").max_lifetime = milliseconds(3600000); }},
    {"accounts.prod.renew_before", [](Config& c) { c.accounts.at("prod").renew_before = milliseconds(60000); }},
    {"accounts.prod.expire_on_shutdown", [](Config& c) { c.accounts.at("prod").expire_on_shutdown = false; }},
    {"accounts.prod.relogin_interval", [](Config& c) { c.accounts.at("prod").relogin_interval = milliseconds(1); }},
    {"accounts.prod (removed)", [](Config& c) { c.accounts.clear(); }},
    {"accounts.staging (added)", [](Config& c) {
       AccountConfig staging;
       staging.name = "staging";
       c.accounts.emplace("staging", std::move(staging));
     }},
};

const std::vector<Change> kApplied = {
    {"policy", [](Config& c) { c.policy[0].methods = {"Utilities/*"}; }},
    {"shutdown_timeout", [](Config& c) { c.shutdown_timeout = milliseconds(2000); }},
};

TEST(ReloadPlanTest, NothingChangedNothingReported) {
  ReloadPlan plan = PlanReload(Running(), Running());
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_TRUE(plan.needs_restart.empty());
}

// Each change is reported alone, in `reported`, and nothing is in `other`.
void ExpectEachReportedAlone(const std::vector<Change>& changes, std::vector<std::string> ReloadPlan::*reported,
                             std::vector<std::string> ReloadPlan::*other) {
  for (const Change& change : changes) {
    Config fresh = Running();
    change.edit(fresh);
    ReloadPlan plan = PlanReload(Running(), fresh);
    EXPECT_EQ(plan.*reported, std::vector<std::string>{change.key}) << change.key;
    EXPECT_TRUE((plan.*other).empty()) << change.key;
  }
}

TEST(ReloadPlanTest, EachKeyThatWaitsForARestartIsNamed) {
  ExpectEachReportedAlone(kNeedsRestart, &ReloadPlan::needs_restart, &ReloadPlan::applied);
}

TEST(ReloadPlanTest, PolicyAndShutdownTimeoutAreApplied) {
  ExpectEachReportedAlone(kApplied, &ReloadPlan::applied, &ReloadPlan::needs_restart);
}

TEST(ReloadPlanTest, ApplyTakesTheAppliedKeysAndKeepsTheRest) {
  Config fresh = Running();
  for (const Change& change : kApplied) change.edit(fresh);
  for (const Change& change : kNeedsRestart) change.edit(fresh);
  Config running = Running();
  Config after = ApplyReload(running, fresh);
  EXPECT_EQ(after.policy, fresh.policy);
  EXPECT_EQ(after.shutdown_timeout, fresh.shutdown_timeout);
  // What waits for a restart is what still runs: a second reload names it again.
  ReloadPlan again = PlanReload(after, fresh);
  EXPECT_TRUE(again.applied.empty());
  EXPECT_EQ(again.needs_restart.size(), PlanReload(running, fresh).needs_restart.size());
  EXPECT_TRUE(PlanReload(running, after).needs_restart.empty());
}

}  // namespace
}  // namespace stormbroker
