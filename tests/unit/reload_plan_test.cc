#include "config/reload_plan.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "config/sections.h"

namespace stormbroker {
namespace {

using std::chrono::milliseconds;

// A directory with the files a full config names: a password, a fleet key.
class Files {
 public:
  Files() {
    char pattern[] = "/tmp/sb-reload-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  ~Files() { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    chmod(path.c_str(), 0600);
    return path;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// A config with every section, so that any key can be set in it alone.
YAML::Node FullDocument(const Files& files) {
  return YAML::Load(R"(
listen: {socket: )" + files.dir() + R"(/broker.sock, https_proxy: {address: "127.0.0.1:8444"}}
upstream: {url: "https://127.0.0.1:1/v1"}
accounts:
  prod: {username: deploy-bot, password_file: )" + files.Write("prod.password", "pw") + R"(, expire_on_shutdown: true}
policy:
  - {users: [root], accounts: ["*"], methods: ["*"]}
fleet:
  key_file: )" + files.Write("fleet.key", std::string(64, 'a')) + R"(
  name: build-07
  etcd: {endpoints: ["http://127.0.0.1:2379"], insecure: true}
)");
}

Result<Config> Load(const Files& files, const YAML::Node& doc, const std::string& name) {
  YAML::Emitter out;
  out << doc;
  return LoadConfig(files.Write(name, out.c_str()));
}

// `doc` with the key at dotted `path` set to `value`.
void Set(YAML::Node doc, const std::string& path, const std::string& value) {
  size_t dot = path.find('.');
  if (dot == std::string::npos) {
    doc[path] = value;
    return;
  }
  Set(doc[path.substr(0, dot)], path.substr(dot + 1), value);
}

Config Running() {
  Config config;
  config.path = "/etc/stormbroker/stormbroker.yaml";
  config.listen.socket_path = "/run/stormbroker/broker.sock";
  config.upstream.url = "https://api.example/v1";
  config.fleet.enabled = true;
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

// The keys whose values are files the daemon reads (or lists, or need a
// companion key), changed in the parsed config instead of in the file.
const std::map<std::string, std::function<void(Config&)>> kEditedInStruct = {
    {"listen.http_tls.cert_file", [](Config& c) { c.listen.http_tls_cert_file = "/etc/door.pem"; }},
    {"listen.http_tls.key_file", [](Config& c) { c.listen.http_tls_key_file = "/etc/door.key"; }},
    {"accounts.*.password_file", [](Config& c) { c.accounts.at("prod").password = Secret("changed"); }},
    {"accounts.*.totp_secret_file", [](Config& c) { c.accounts.at("prod").totp_key = Secret("key"); }},
    {"fleet.key_file", [](Config& c) { c.fleet.sealing_key = Secret(std::string(32, 'b')); }},
    {"fleet.etcd.endpoints", [](Config& c) { c.fleet.endpoints.push_back({true, "10.0.0.9", 2379}); }},
    {"fleet.etcd.insecure", [](Config& c) { c.fleet.insecure = true; }},
    {"fleet.etcd.ca_file", [](Config& c) { c.fleet.ca_file = "/etc/etcd-ca.pem"; }},
    {"fleet.etcd.cert_file", [](Config& c) { c.fleet.client_cert_file = "/etc/etcd.pem"; }},
    {"fleet.etcd.key_file", [](Config& c) { c.fleet.client_key_file = "/etc/etcd.key"; }},
    {"fleet.etcd.username", [](Config& c) { c.fleet.username = "broker"; }},
    {"fleet.etcd.password_file", [](Config& c) { c.fleet.password = Secret("etcd-pw"); }},
    {"policy", [](Config& c) { c.policy[0].methods = {"Utilities/*"}; }},
    {"cache", [](Config& c) { c.cache.push_back({1, {"Storm/Server/list"}, {}, std::chrono::seconds(5)}); }},
};

// What a reload reports when `changed` differs from `running` in one key.
void ExpectNamedAlone(const config::KeyInfo& key, const std::string& reported, const Config& running,
                      const Config& changed) {
  ReloadPlan plan = PlanReload(running, changed);
  bool applied = key.reload == config::OnReload::kApplied;
  EXPECT_EQ(applied ? plan.applied : plan.needs_restart, std::vector<std::string>{reported}) << key.path;
  EXPECT_TRUE((applied ? plan.needs_restart : plan.applied).empty()) << key.path;
}

// Every key of the config's tables: set in the file (or, for the keys
// above, in the parsed config), each change is named alone, as applied or
// as waiting for a restart. A key added to a table without an example value
// or an entry above fails here.
TEST(ReloadPlanTest, EveryKeyOfTheTablesIsNamedWhenItChanges) {
  Files files;
  auto base = Load(files, FullDocument(files), "base.yaml");
  ASSERT_TRUE(base.ok()) << base.status().message();
  auto keys = config::AllKeys();
  ASSERT_GT(keys.size(), 50u);
  for (const auto& key : keys) {
    std::string path = key.path;
    if (size_t star = path.find(".*."); star != std::string::npos) path.replace(star, 3, ".prod.");
    if (!key.example.empty()) {
      YAML::Node doc = FullDocument(files);
      Set(doc, path, key.example);
      auto changed = Load(files, doc, "changed.yaml");
      ASSERT_TRUE(changed.ok()) << key.path << " = " << key.example << ": " << changed.status().message();
      ExpectNamedAlone(key, path, *base, *changed);
      continue;
    }
    auto edit = kEditedInStruct.find(key.path);
    ASSERT_NE(edit, kEditedInStruct.end()) << key.path << " has no example value and no edit in this test";
    Config changed = Running();
    edit->second(changed);
    ExpectNamedAlone(key, path, Running(), changed);
  }
}

TEST(ReloadPlanTest, AccountsAddedOrRemovedWaitForARestart) {
  Config fewer = Running();
  fewer.accounts.clear();
  EXPECT_EQ(PlanReload(Running(), fewer).needs_restart, std::vector<std::string>{"accounts.prod (removed)"});
  Config more = Running();
  AccountConfig staging;
  staging.name = "staging";
  more.accounts.emplace("staging", std::move(staging));
  EXPECT_EQ(PlanReload(Running(), more).needs_restart, std::vector<std::string>{"accounts.staging (added)"});
}

TEST(ReloadPlanTest, NothingChangedNothingReported) {
  ReloadPlan plan = PlanReload(Running(), Running());
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_TRUE(plan.needs_restart.empty());
}

TEST(ReloadPlanTest, ApplyTakesTheAppliedKeysAndKeepsTheRest) {
  Config fresh = Running();
  for (const auto& [path, edit] : kEditedInStruct) edit(fresh);
  fresh.shutdown_timeout = milliseconds(2000);
  fresh.upstream.timeout = milliseconds(5000);
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
