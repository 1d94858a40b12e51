// LoadConfig on files written from a YAML document: every broken file is
// refused with FILE:LINE: and a reason, and never with a secret in it. (One
// end-to-end check of stormbrokerd --check-config stays in the integration
// suite.)
#include "config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>

namespace stormbroker {
namespace {

constexpr const char* kPassword = "secret-value-123";

struct BrokenCase {
  std::string name;
  std::function<void(YAML::Node&)> edit;
  std::string line_holds;  // the text on the line the error must name
  std::string says;
};

class ConfigLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/sb-config-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    password_file_ = Write("prod.password", std::string(kPassword) + "\n", 0600);
  }
  void TearDown() override {
    for (const char* name : {"prod.password", "config.yaml"}) unlink((dir_ + "/" + name).c_str());
    rmdir(dir_.c_str());
  }

  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0644) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }

  // A valid configuration, as a document that tests edit before it is written.
  YAML::Node Document() {
    YAML::Node doc;
    doc["listen"]["socket"] = dir_ + "/broker.sock";
    doc["upstream"]["url"] = "https://127.0.0.1:1/v1";
    doc["upstream"]["timeout"] = "30s";
    doc["accounts"]["prod"]["username"] = "deploy-bot";
    doc["accounts"]["prod"]["password_file"] = password_file_;
    YAML::Node rule;
    rule["users"].push_back("root");
    rule["accounts"].push_back("*");
    rule["methods"].push_back("*");
    doc["policy"].push_back(rule);
    return doc;
  }

  static std::string Yaml(const YAML::Node& doc) {
    YAML::Emitter out;
    out << doc;
    return std::string(out.c_str()) + "\n";
  }

  Result<Config> Load(const std::string& yaml) {
    text_ = yaml;
    path_ = Write("config.yaml", yaml);
    return LoadConfig(path_);
  }

  // The 1-based line of the first line of the last written file holding `text`.
  int LineOf(const std::string& text) const {
    std::istringstream in(text_);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (line.find(text) != std::string::npos) return number;
    }
    ADD_FAILURE() << "no line holds " << text;
    return 0;
  }

  // Each case, applied to a fresh `document()`, is refused with FILE:LINE: of
  // the line holding its text and its reason, and no secret in the message.
  void ExpectEachRefused(const std::vector<BrokenCase>& cases, const std::function<YAML::Node()>& document) {
    for (const auto& c : cases) {
      YAML::Node doc = document();
      c.edit(doc);
      auto config = Load(Yaml(doc));
      ASSERT_FALSE(config.ok()) << c.name;
      const std::string& message = config.status().message();
      EXPECT_EQ(message.rfind(path_ + ":" + std::to_string(LineOf(c.line_holds)) + ": ", 0), 0u)
          << c.name << ": " << message << "\n" << text_;
      EXPECT_NE(message.find(c.says), std::string::npos) << c.name << ": " << message;
      EXPECT_EQ(message.find("hunter2"), std::string::npos) << c.name;
      EXPECT_EQ(message.find(kPassword), std::string::npos) << c.name;
    }
  }

  std::string dir_, password_file_, path_, text_;
};

TEST_F(ConfigLoaderTest, TheDocumentIsValid) {
  auto config = Load(Yaml(Document()));
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->accounts.at("prod").username, "deploy-bot");
  EXPECT_EQ(config->upstream.timeout, std::chrono::seconds(30));
}

TEST_F(ConfigLoaderTest, CacheRulesAreReadAndOneThatMayCoverAWriteIsWarnedOf) {
  YAML::Node doc = Document();
  doc["cache"] = YAML::Load(R"([{methods: [Storm/Server/list, "Storm/*/details"], ttl: 10s},
                                {methods: ["Storm/Server/*"], accounts: [prod], ttl: 0s}])");
  auto config = Load(Yaml(doc));
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_EQ(config->cache.size(), 2u);
  EXPECT_EQ(config->cache[0].ttl, std::chrono::seconds(10));
  EXPECT_EQ(config->cache[1].accounts, std::vector<std::string>{"prod"});
  EXPECT_EQ(config->cache_max_bytes, size_t{64} << 20);
  ASSERT_EQ(config->warnings.size(), 1u) << "list and details read; Storm/Server/* covers update too";
  EXPECT_NE(config->warnings[0].find(path_ + ":" + std::to_string(LineOf("Storm/Server/*")) + ": "), std::string::npos)
      << config->warnings[0];
  EXPECT_NE(config->warnings[0].find("may write"), std::string::npos);

  doc["cache"] = YAML::Load("[{methods: [Storm/Server/list], accounts: [staging], ttl: 5s}]");
  auto unknown = Load(Yaml(doc));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("account 'staging'"), std::string::npos);
  doc["cache"] = YAML::Load("[{methods: [Storm/Server/list]}]");
  auto no_ttl = Load(Yaml(doc));
  ASSERT_FALSE(no_ttl.ok());
  EXPECT_NE(no_ttl.status().message().find("ttl"), std::string::npos);
}

TEST_F(ConfigLoaderTest, BrokenConfigsNameFileLineAndReason) {
  auto rule = [](const char* who_key, const char* who, const char* account) {
    YAML::Node r;
    r[who_key].push_back(who);
    r["accounts"].push_back(account);
    r["methods"].push_back("*");
    return r;
  };
  const std::vector<BrokenCase> cases = {
      {"bad duration", [](YAML::Node& d) { d["accounts"]["prod"]["token_timeout"] = "10 minutes"; }, "token_timeout",
       "not a duration"},
      {"duration too long", [](YAML::Node& d) { d["accounts"]["prod"]["token_timeout"] = "2h"; }, "token_timeout",
       "between"},
      {"unknown key", [](YAML::Node& d) { d["accounts"]["prod"]["pasword_file"] = "/x"; }, "pasword_file",
       "unknown key 'pasword_file'"},
      {"inline password", [](YAML::Node& d) { d["accounts"]["prod"]["password"] = "hunter2"; }, "password: hunter2",
       "never written in the config"},
      {"unknown top key", [](YAML::Node& d) { d["extra"] = 1; }, "extra:", "unknown key 'extra'"},
      {"unknown user in policy", [&](YAML::Node& d) { d["policy"].push_back(rule("users", "no-such-user-xyz", "prod")); },
       "no-such-user-xyz", "unknown user 'no-such-user-xyz'"},
      {"policy names a missing account", [&](YAML::Node& d) { d["policy"].push_back(rule("uids", "0", "staging")); },
       "staging", "account 'staging'"},
      {"limit per uid above the total",
       [](YAML::Node& d) {
         d["limits"]["connections"] = 10;
         d["limits"]["connections_per_uid"] = 20;
       },
       "connections_per_uid", "limits.connections_per_uid must not exceed"},
      {"unknown limit", [](YAML::Node& d) { d["limits"]["conections"] = 10; }, "conections",
       "unknown key 'conections' in limits"},
      {"bad size", [](YAML::Node& d) { d["limits"]["max_request_size"] = "1MB"; }, "max_request_size",
       "KiB, MiB or GiB"},
      {"relogin interval too short", [](YAML::Node& d) { d["accounts"]["prod"]["relogin_interval"] = "0s"; },
       "relogin_interval", "between"},
      {"upstream connections not a count", [](YAML::Node& d) { d["upstream"]["max_connections"] = "8.5"; },
       "max_connections", "upstream.max_connections must be a number of connections from 1 to 1024"},
      {"upstream connections out of range", [](YAML::Node& d) { d["upstream"]["max_connections"] = 1025; },
       "max_connections", "from 1 to 1024"},
      {"http door off loopback", [](YAML::Node& d) { d["listen"]["http"] = "0.0.0.0:8089"; }, "http:",
       "listen.http is not a loopback address"},
      {"http door without a port", [](YAML::Node& d) { d["listen"]["http"] = "127.0.0.1"; }, "http:",
       "listen.http has no port"},
      {"tls without the tcp door",
       [&](YAML::Node& d) {
         d["listen"]["http_tls"]["cert_file"] = password_file_;
         d["listen"]["http_tls"]["key_file"] = password_file_;
       },
       "cert_file", "listen.http_tls needs listen.http"},
      {"unreadable password file",
       [&](YAML::Node& d) { d["accounts"]["prod"]["password_file"] = dir_ + "/missing.password"; },
       "missing.password", "cannot read secret file " + dir_ + "/missing.password"},
  };
  ExpectEachRefused(cases, [&] { return Document(); });
}

class FleetConfigTest : public ConfigLoaderTest {
 protected:
  void SetUp() override {
    ConfigLoaderTest::SetUp();
    key_file_ = Write("fleet.key", std::string(64, 'a') + "\n", 0600);
  }
  void TearDown() override {
    unlink(key_file_.c_str());
    ConfigLoaderTest::TearDown();
  }
  YAML::Node FleetDocument() {
    YAML::Node doc = Document();
    doc["fleet"]["name"] = "build-07";
    doc["fleet"]["key_file"] = key_file_;
    doc["fleet"]["etcd"]["endpoints"].push_back("http://127.0.0.1:2379");
    doc["fleet"]["etcd"]["insecure"] = "true";
    return doc;
  }
  std::string key_file_;
};

TEST_F(FleetConfigTest, AFleetMachineMayHoldNoPasswordAndGetsSaneDefaults) {
  YAML::Node doc = FleetDocument();
  doc["accounts"]["prod"].remove("password_file");
  auto config = Load(Yaml(doc));
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_TRUE(config->fleet.enabled);
  EXPECT_EQ(config->fleet.prefix, "/stormbroker");
  EXPECT_EQ(config->fleet.lease_ttl, std::chrono::seconds(5));
  EXPECT_EQ(config->fleet.sealing_key.Reveal(), std::string(32, '\xaa'));
  EXPECT_FALSE(config->accounts.at("prod").HoldsCredentials()) << "it can only follow";
  ASSERT_EQ(config->fleet.endpoints.size(), 1u);
  EXPECT_FALSE(config->fleet.endpoints[0].tls);
  EXPECT_EQ(config->fleet.endpoints[0].port, 2379);

  doc = Document();
  doc["accounts"]["prod"].remove("password_file");
  auto alone = Load(Yaml(doc));
  ASSERT_FALSE(alone.ok()) << "outside a fleet an account needs its password";
  EXPECT_NE(alone.status().message().find("password_file"), std::string::npos);
}

TEST_F(FleetConfigTest, BrokenFleetConfigsNameFileLineAndReason) {
  const std::vector<BrokenCase> cases = {
      {"plain http off loopback", [](YAML::Node& d) { d["fleet"]["etcd"]["endpoints"][0] = "http://10.0.0.1:2379"; },
       "10.0.0.1", "plain http:// is allowed only to a loopback address"},
      {"https without a client certificate",
       [](YAML::Node& d) { d["fleet"]["etcd"]["endpoints"][0] = "https://10.0.0.1:2379"; }, "endpoints:",
       "needs cert_file and key_file"},
      {"no scheme", [](YAML::Node& d) { d["fleet"]["etcd"]["endpoints"][0] = "10.0.0.1:2379"; }, "10.0.0.1",
       "must start with https://"},
      {"plain http without saying insecure", [](YAML::Node& d) { d["fleet"]["etcd"].remove("insecure"); },
       "127.0.0.1:2379", "say fleet.etcd.insecure: true"},
      {"a username without its password",
       [](YAML::Node& d) { d["fleet"]["etcd"]["username"] = "broker"; }, "username: broker", "go together"},
      {"no key file", [](YAML::Node& d) { d["fleet"].remove("key_file"); }, "name: build-07", "openssl rand -hex 32"},
      {"short key", [&](YAML::Node& d) { d["fleet"]["key_file"] = password_file_; }, "key_file",
       "a fleet key is 32 bytes"},
      {"lease ttl in milliseconds", [](YAML::Node& d) { d["fleet"]["lease_ttl"] = "2500ms"; }, "lease_ttl",
       "whole seconds"},
      {"grace shorter than a call", [](YAML::Node& d) { d["fleet"]["retire_grace"] = "10s"; }, "retire_grace",
       "at least upstream.timeout"},
      {"relative prefix", [](YAML::Node& d) { d["fleet"]["prefix"] = "stormbroker"; }, "prefix", "must start with '/'"},
  };
  ExpectEachRefused(cases, [&] { return FleetDocument(); });
}

TEST_F(ConfigLoaderTest, YamlSyntaxErrorNamesItsLine) {
  std::string yaml = Yaml(Document()) + "extra: [1h\n";
  auto config = Load(yaml);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message().rfind(path_ + ":", 0), 0u) << config.status().message();
}

}  // namespace
}  // namespace stormbroker
