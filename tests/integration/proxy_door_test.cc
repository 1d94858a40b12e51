// The HTTPS proxy door end to end: clients that hard-code
// https://api.stormondemand.com (Python requests, curl, PHP's curl), run as
// a user would, with https_proxy pointing at the broker and its local CA
// trusted; and the door refusing to be an open proxy.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using harness::RunCommand;
using harness::RunResult;

constexpr const char* kPassword = "proxy-door-pw-5Tx";
constexpr const char* kStagingPassword = "proxy-staging-pw-2Kd";
constexpr const char* kDummy = "dummy-client-pw-8Qe";  // what the clients hold as their password
constexpr uid_t kNobody = 65534;

class ProxyDoorTest : public harness::BrokerTest {
 protected:
  void SetUp() override {
    storm_ = std::make_unique<harness::FakeStorm>(
        dir_, std::vector<harness::StormUser>{{"deploy-bot", kPassword, ""}, {"stage-bot", kStagingPassword, ""}});
    password_file_ = dir_.Write("prod.password", std::string(kPassword) + "\n", 0600);
    audit_ = dir_.path() + "/audit.jsonl";
    ca_ = dir_.path() + "/proxy-ca.pem";
    port_ = harness::FreePort();
    proxy_ = "http://127.0.0.1:" + std::to_string(port_);
  }

  // Two accounts; root may do everything, nobody may only ping prod.
  YAML::Node Config() const {
    YAML::Node config = BrokerTest::Config();
    config["listen"]["https_proxy"]["address"] = "127.0.0.1:" + std::to_string(port_);
    config["listen"]["https_proxy"]["ca_cert_file"] = ca_;
    config["listen"]["https_proxy"]["ca_key_file"] = dir_.path() + "/proxy-ca.key";
    config["audit"]["file"] = audit_;
    config["accounts"]["staging"]["username"] = "stage-bot";
    config["accounts"]["staging"]["password_file"] = dir_.Write("staging.password", kStagingPassword, 0600);
    config["policy"] = YAML::Load(R"([{users: [root], accounts: ["*"], methods: ["*"]},
                                      {users: [nobody], accounts: [prod], methods: [Utilities/Info/ping]}])");
    return config;
  }

  // The environment a user sets for a client with a hard-coded URL.
  std::map<std::string, std::string> ProxyEnvironment() const {
    return {{"https_proxy", proxy_}, {"HTTPS_PROXY", proxy_}, {"no_proxy", ""}, {"NO_PROXY", ""},
            {"REQUESTS_CA_BUNDLE", ca_}};
  }

  // A small program standing in for the libraries: requests, the URL
  // hard-coded, one Session (one tunnel, kept alive) for every method named.
  RunResult Requests(const std::string& account, std::vector<std::string> methods,
                     std::optional<uid_t> as = std::nullopt) const {
    std::string script = R"(import json, sys, requests
session = requests.Session()
session.auth = (sys.argv[1], sys.argv[2])
for method in sys.argv[3:]:
    r = session.post('https://api.stormondemand.com/v1/' + method, json={'params': {}}, timeout=20)
    print(r.status_code, json.dumps(r.json(), sort_keys=True))
)";
    std::vector<std::string> argv = {"/usr/bin/python3", "-c", script, account, kDummy};
    argv.insert(argv.end(), methods.begin(), methods.end());
    return RunCommand(argv, "", as, ProxyEnvironment());
  }

  // The daemon with `config`, once the proxy door serves: its accounts are
  // active before it (the CA is made or read after the sessions start),
  // and a slow build (sanitizers) shows the gap.
  void StartWithProxy(const YAML::Node& config) {
    StartBroker(config);
    ASSERT_TRUE(harness::Eventually([&] { return broker_->Log().find("HTTPS proxy door on") != std::string::npos; }))
        << broker_->Log();
  }

  // The audit records once `ready` holds of them (harness::AuditWhen).
  std::vector<nlohmann::json> AuditWhen(const std::function<bool(const std::vector<nlohmann::json>&)>& ready) const {
    return harness::AuditWhen(audit_, ready);
  }
  int CountAudited(const std::function<bool(const nlohmann::json&)>& match, int expected) const {
    return harness::CountAudited(audit_, match, expected);
  }

  std::string audit_, ca_, proxy_;
  int port_ = 0;
};

TEST_F(ProxyDoorTest, ClientsWithAHardCodedUrlReachTheApiThroughHttpsProxy) {
  StartWithProxy(Config());
  // Python requests: two calls through one kept-alive tunnel.
  RunResult python = Requests("prod", {"Utilities/Info/ping", "Storm/Server/list"});
  ASSERT_EQ(python.exit_code, 0) << python.err << broker_->Log();
  EXPECT_EQ(python.out.substr(0, python.out.find('\n')), R"(200 {"ping": "success"})");
  EXPECT_NE(python.out.find("\n200 {\"item_count\""), std::string::npos) << python.out;

  // curl with --proxy, no --connect-to: it sends CONNECT api.stormondemand.com:443.
  RunResult curl = RunCommand({"/usr/bin/curl", "-sS", "--proxy", proxy_, "--cacert", ca_, "-u",
                               std::string("prod:") + kDummy, "--data-binary", R"({"params": {}})",
                               "https://api.stormondemand.com/v1/Utilities/Info/ping"});
  ASSERT_EQ(curl.exit_code, 0) << curl.err;
  EXPECT_EQ(nlohmann::json::parse(curl.out), nlohmann::json({{"ping", "success"}}));

  // PHP's curl through https_proxy, the CA as PHP's curl.cainfo; the Basic
  // username picks the staging account (the audit below shows it).
  std::string php = R"($c = curl_init('https://api.stormondemand.com/v1/Utilities/Info/ping');
curl_setopt_array($c, [CURLOPT_USERPWD => 'staging:)" + std::string(kDummy) + R"(', CURLOPT_POSTFIELDS => '{"params":{}}',
  CURLOPT_RETURNTRANSFER => true]);
$body = curl_exec($c);
echo curl_getinfo($c, CURLINFO_HTTP_CODE), ' ', $body === false ? curl_error($c) : $body;)";
  auto env = ProxyEnvironment();
  RunResult php_run = RunCommand({"/usr/bin/php", "-d", "curl.cainfo=" + ca_, "-r", php}, "", std::nullopt, env);
  ASSERT_EQ(php_run.exit_code, 0) << php_run.err;
  ASSERT_EQ(php_run.out.substr(0, 4), "200 ") << php_run.out;
  EXPECT_EQ(nlohmann::json::parse(php_run.out.substr(4)), nlohmann::json({{"ping", "success"}}));

  // Upstream saw the broker's tokens only: one login per account.
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2);
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 3);
  EXPECT_EQ(storm_->Count("storm/server/list", "token"), 1);

  std::vector<std::string> calls;
  auto records = AuditWhen([](const std::vector<nlohmann::json>& records) {
    return std::count_if(records.begin(), records.end(), [](const nlohmann::json& r) {
             return r["rpc"] == "Call" && r["outcome"] == "ok";
           }) >= 4;
  });
  for (const auto& record : records) {
    if (record["rpc"] == "Call" && record["outcome"] == "ok") {
      EXPECT_EQ(record["listener"], "https-proxy");
      calls.push_back(record["account"].get<std::string>() + " " + record["method"].get<std::string>());
    }
  }
  EXPECT_EQ(calls, (std::vector<std::string>{"prod Utilities/Info/ping", "prod Storm/Server/list",
                                             "prod Utilities/Info/ping", "staging Utilities/Info/ping"}));
  // No secret anywhere: neither the accounts' passwords nor what the clients sent.
  std::string seen = harness::ReadFile(audit_) + broker_->Log() + python.out + python.err + curl.out + curl.err +
                     php_run.out + php_run.err;
  for (std::string secret : {kPassword, kStagingPassword, kDummy}) {
    EXPECT_EQ(seen.find(secret), std::string::npos) << "a secret in the output or the logs: " << secret;
  }
}

TEST_F(ProxyDoorTest, AnotherUidIsHeldToItsPolicy) {
  StartWithProxy(Config());
  RunResult nobody = Requests("prod", {"Utilities/Info/ping", "Storm/Server/list"}, kNobody);
  ASSERT_EQ(nobody.exit_code, 0) << nobody.err;
  std::istringstream lines(nobody.out);
  std::string ping, list;
  std::getline(lines, ping);
  std::getline(lines, list);
  EXPECT_EQ(ping, R"(200 {"ping": "success"})");
  ASSERT_EQ(list.substr(0, 4), "403 ") << list;
  EXPECT_EQ(nlohmann::json::parse(list.substr(4))["error_class"], "StormBroker::PermissionDenied") << list;
  RunResult staging = Requests("staging", {"Utilities/Info/ping"}, kNobody);
  EXPECT_EQ(staging.out.substr(0, 4), "403 ") << staging.out << staging.err;
  EXPECT_EQ(storm_->Count("storm/server/list", "token"), 0);
  bool denied_audited = CountAudited([](const nlohmann::json& r) {
    return r["uid"] == kNobody && r["method"] == "Storm/Server/list" && r["decision"] == "deny" &&
           r["listener"] == "https-proxy";
  }, 1) == 1;
  EXPECT_TRUE(denied_audited);
}

// A loopback listener the test owns: whatever the broker is asked to
// connect to, nothing may arrive here.
class Bystander {
 public:
  Bystander() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    listen(fd_, 16);
    socklen_t length = sizeof address;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~Bystander() { close(fd_); }
  int port() const { return port_; }
  bool Reached() const {
    int accepted = accept(fd_, nullptr, nullptr);
    if (accepted >= 0) close(accepted);
    return accepted >= 0;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(ProxyDoorTest, IsNoOpenProxy) {
  StartWithProxy(Config());
  Bystander bystander;
  std::string local = "127.0.0.1:" + std::to_string(bystander.port());
  struct Attempt {
    std::vector<std::string> args;
    std::string what;
  };
  std::vector<Attempt> attempts = {
      {{"https://" + local + "/"}, "CONNECT to a reachable loopback address"},
      {{"--proxytunnel", "http://" + local + "/"}, "CONNECT to it for plain HTTP"},
      {{"http://" + local + "/"}, "a plain proxy GET"},
      {{"--proxytunnel", "http://api.stormondemand.com/v1/Utilities/Info/ping"}, "CONNECT to the API's port 80"},
      {{"https://api.stormondemand.com.evil.example/"}, "CONNECT to a name that only starts like the API's"},
  };
  for (const Attempt& attempt : attempts) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect} %{http_code}",
                                     "--max-time", "10", "--proxy", proxy_, "--cacert", ca_};
    argv.insert(argv.end(), attempt.args.begin(), attempt.args.end());
    RunResult run = RunCommand(argv);
    EXPECT_TRUE(run.out == "403 000" || run.out == "000 403") << attempt.what << ": " << run.out << " " << run.err;
  }
  EXPECT_FALSE(bystander.Reached()) << "the broker connected where it was told to";
  int refusals = CountAudited([](const nlohmann::json& r) {
    return r["listener"] == "https-proxy" && r["rpc"] == "connect" && r["decision"] == "deny";
  }, static_cast<int>(attempts.size()));
  EXPECT_EQ(refusals, static_cast<int>(attempts.size()));
  EXPECT_TRUE(broker_->process().Running());
}

TEST_F(ProxyDoorTest, SilentConnectionsOfOneUserHoldNoMoreThanTheirShare) {
  // Connections that never send their CONNECT hold a descriptor each until
  // the timeout (no thread), within the user's limits.connections_per_uid.
  YAML::Node config = Config();
  config["limits"]["connections_per_uid"] = "8";
  StartWithProxy(config);
  std::vector<int> silent;
  for (int i = 0; i < 8; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    silent.push_back(fd);
  }
  auto ping = [&](std::optional<uid_t> as) {
    return RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_connect}", "--max-time", "10",
                       "--proxy", proxy_, "--cacert", ca_, "-u", "prod:x", "--data-binary", "{}",
                       "https://api.stormondemand.com/v1/Utilities/Info/ping"},
                      "", as)
        .out;
  };
  EXPECT_TRUE(harness::Eventually([&] { return ping(std::nullopt) == "503"; })) << "the ninth of one user is refused";
  EXPECT_EQ(ping(kNobody), "200") << "another user is served meanwhile";
  for (int fd : silent) close(fd);
  EXPECT_TRUE(harness::Eventually([&] { return ping(std::nullopt) == "200"; }));
}

TEST_F(ProxyDoorTest, TheCaIsMadeOnceConstrainedAndItsKeyPrivate) {
  StartWithProxy(Config());
  struct stat key {};
  ASSERT_EQ(stat((dir_.path() + "/proxy-ca.key").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600u);
  RunResult text = RunCommand({"/usr/bin/openssl", "x509", "-noout", "-text", "-in", ca_});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("X509v3 Name Constraints: critical"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("DNS:api.stormondemand.com"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("DNS:api.liquidweb.com"), std::string::npos) << text.out;
  // The served leaf verifies against it for the API's name, as a client checks.
  RunResult served = RunCommand({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{ssl_verify_result}", "--proxy",
                                 proxy_, "--cacert", ca_, "-u", "prod:x", "--data-binary", "{}",
                                 "https://api.liquidweb.com/v1/Utilities/Info/ping"});
  EXPECT_EQ(served.out, "0") << served.err;
  // stormctl prints the CA clients are to trust.
  RunResult printed = Ctl({"proxy-ca"});
  EXPECT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_EQ(printed.out, harness::ReadFile(ca_));
  // A restart keeps the CA (clients trust it), minting a new leaf.
  std::string before = harness::ReadFile(ca_);
  broker_.reset();
  StartWithProxy(Config());
  EXPECT_EQ(harness::ReadFile(ca_), before);
}

}  // namespace
