// The HTTP door end to end: clients the team did not write (curl, Python's
// http.client) call the Storm API's own paths through the real daemon, on
// its Unix socket and on loopback TCP, against the emulator.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness.h"

namespace {

using harness::RunCommand;
using harness::RunResult;

constexpr const char* kPassword = "http-door-pw-8Jq";
constexpr const char* kStagingPassword = "http-staging-pw-3Vm";
constexpr const char* kClientSecret = "client-held-secret-4Rz";  // what a client sends as its password
const std::optional<uid_t> kNobody = 65534;

// An HTTP answer as the test sees it.
struct Answer {
  int status = 0;
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

class HttpDoorTest : public harness::BrokerTest {
 protected:
  void SetUp() override {
    storm_ = std::make_unique<harness::FakeStorm>(
        dir_, std::vector<harness::StormUser>{{"deploy-bot", kPassword, ""}, {"stage-bot", kStagingPassword, ""}});
    password_file_ = dir_.Write("prod.password", std::string(kPassword) + "\n", 0600);
    http_socket_ = dir_.path() + "/run/http.sock";
    audit_ = dir_.path() + "/audit.jsonl";
    port_ = harness::FreePort();
  }

  // Two accounts; root may do everything, nobody may ping prod.
  YAML::Node Config() const {
    YAML::Node config = BrokerTest::Config();
    config["listen"]["http_socket"] = http_socket_;
    config["listen"]["http"] = "127.0.0.1:" + std::to_string(port_);
    config["audit"]["file"] = audit_;
    config["accounts"]["staging"]["username"] = "stage-bot";
    config["accounts"]["staging"]["password_file"] = dir_.Write("staging.password", kStagingPassword, 0600);
    config["policy"] = YAML::Load(R"([{users: [root], accounts: ["*"], methods: ["*"]}])");
    return config;
  }

  // curl on the Unix socket: POST `path` with `body`; `args` go first.
  Answer Curl(const std::string& path, const std::string& body, std::vector<std::string> args = {},
              std::optional<uid_t> as = std::nullopt) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-s", "--unix-socket", http_socket_, "-o", "-", "-w",
                                     "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--data-binary", body, "http://broker" + path});
    return Parse(RunCommand(argv, "", as));
  }

  // Python's standard http.client on loopback TCP, as `as`; over TLS
  // (trusting the emulator's test CA) with `tls`.
  Answer Python(const std::string& path, const std::string& body, std::optional<uid_t> as = std::nullopt,
                bool tls = false) {
    std::string connect =
        tls ? "import ssl\nc = http.client.HTTPSConnection('127.0.0.1', " + std::to_string(port_) +
                  ", timeout=20, context=ssl.create_default_context(cafile='" + storm_->ca_file() + "'))\n"
            : "c = http.client.HTTPConnection('127.0.0.1', " + std::to_string(port_) + ", timeout=20)\n";
    std::string script =
        "import http.client, sys\n" + connect +
        "c.request('POST', sys.argv[1], body=sys.argv[2], headers={'Content-Type': 'application/json'})\n"
        "r = c.getresponse()\n"
        "sys.stdout.write(r.read().decode() + '\\n' + str(r.status))\n";
    return Parse(RunCommand({"/usr/bin/python3", "-c", script, path, body}, "", as));
  }

  static Answer Parse(const RunResult& result) {
    Answer answer;
    size_t newline = result.out.rfind('\n');
    if (newline == std::string::npos) {
      ADD_FAILURE() << "no HTTP answer: " << result.err;
      return answer;
    }
    answer.body = result.out.substr(0, newline);
    answer.status = std::atoi(result.out.substr(newline + 1).c_str());
    return answer;
  }

  // The audit records once `ready` holds of them (harness::AuditWhen).
  std::vector<nlohmann::json> AuditWhen(const std::function<bool(const std::vector<nlohmann::json>&)>& ready) const {
    return harness::AuditWhen(audit_, ready);
  }
  int CountAudited(const std::function<bool(const nlohmann::json&)>& match, int expected) const {
    return harness::CountAudited(audit_, match, expected);
  }

  std::string http_socket_, audit_;
  int port_ = 0;
};

constexpr const char* kEnvelope = R"({"params": {}})";

TEST_F(HttpDoorTest, CurlOnTheUnixSocketCallsTheApiWithTheBrokersToken) {
  StartBroker(Config());
  Answer ping = Curl("/v1/Utilities/Info/ping", kEnvelope, {"-u", "prod:" + std::string(kClientSecret)});
  EXPECT_EQ(ping.status, 200) << ping.body;
  EXPECT_EQ(ping.json(), nlohmann::json({{"ping", "success"}}));
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 1);
  EXPECT_EQ(storm_->Count("utilities/info/ping", "password"), 0) << "the client's password never goes upstream";
  // Any letter case, with or without .json; the bleed version goes to bleed.
  EXPECT_EQ(Curl("/V1/utilities/info/PING.json", kEnvelope, {"-u", "prod:x"}).status, 200);
  EXPECT_EQ(Curl("/bleed/Utilities/Info/version", kEnvelope, {"-u", "prod:x"}).json(),
            nlohmann::json({{"version", "bleed"}}));
}

TEST_F(HttpDoorTest, TheBasicUsernameNamesTheAccount) {
  StartBroker(Config());
  EXPECT_EQ(Curl("/v1/Utilities/Info/ping", kEnvelope, {"-u", "staging:anything"}).status, 200);
  EXPECT_EQ(Curl("/v1/Utilities/Info/ping", kEnvelope, {"-H", "X-Stormbroker-Account: prod"}).status, 200);
  Answer unknown = Curl("/v1/Utilities/Info/ping", kEnvelope, {"-u", "nosuch:x"});
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(unknown.json()["error_class"], "StormBroker::NotFound");
  Answer ambiguous = Curl("/v1/Utilities/Info/ping", kEnvelope);
  EXPECT_EQ(ambiguous.status, 400) << ambiguous.body;
  EXPECT_NE(ambiguous.json()["full_message"].get<std::string>().find("name the account"), std::string::npos);
  std::vector<std::string> accounts;
  // The ambiguous request was the last: once its record is in, all are.
  auto records = AuditWhen([](const std::vector<nlohmann::json>& records) {
    return std::any_of(records.begin(), records.end(), [](const nlohmann::json& r) {
      return r.value("detail", "").find("name the account") != std::string::npos;
    });
  });
  for (const auto& r : records) {
    if (r["rpc"] == "Call" && r["outcome"] == "ok") accounts.push_back(r["account"]);
    EXPECT_EQ(r.dump().find("anything"), std::string::npos) << "a client's password reached the audit";
  }
  EXPECT_EQ(accounts, (std::vector<std::string>{"staging", "prod"}));
}

TEST_F(HttpDoorTest, YamlGoesBothWays) {
  StartBroker(Config());
  Answer list = Curl("/v1/Storm/Server/list.yaml", "params:\n  page_size: 2\n", {"-u", "prod:x"});
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_NE(list.body.find("page_size: 2"), std::string::npos) << list.body;
  EXPECT_EQ(list.body.find('{'), std::string::npos) << "answered in YAML, not JSON: " << list.body;
}

TEST_F(HttpDoorTest, TheTokenDanceIsAnsweredLocallyAndTheTokenNeverLeaves) {
  StartBroker(Config());
  Answer login = Curl("/v1/Account/Auth/token", R"({"params": {"timeout": 600}})", {"-u", "prod:x"});
  ASSERT_EQ(login.status, 200) << login.body;
  std::string handle = login.json()["token"];
  EXPECT_EQ(handle.size(), 32u);
  EXPECT_GT(login.json()["expires"].get<long long>(), 0);
  for (const auto& issued : storm_->IssuedTokens()) EXPECT_NE(handle, issued) << "the real token left the broker";
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2) << "one login per account, none for the client";
  // The client then authenticates with the handle, as the libraries do.
  EXPECT_EQ(Curl("/v1/Utilities/Info/ping", kEnvelope, {"-u", "prod:" + handle}).status, 200);
  auto tokens_before = storm_->Tokens();
  Answer expire = Curl("/v1/Account/Auth/expireToken", kEnvelope, {"-u", "prod:" + handle});
  EXPECT_EQ(expire.json(), nlohmann::json({{"expired", 1}}));
  EXPECT_EQ(storm_->Tokens(), tokens_before) << "the account's token lives on";
  EXPECT_EQ(storm_->Count("account/auth/expiretoken", "token"), 0);
  // Any other credential method stays refused, as through gRPC.
  EXPECT_EQ(Curl("/v1/Account/Auth/other", kEnvelope, {"-u", "prod:x"}).status, 403);
}

TEST_F(HttpDoorTest, AnApiExceptionComesBackAsDataAndABadBodyIsAnsweredLocally) {
  StartBroker(Config());
  Answer missing = Curl("/v1/Utilities/Info/nosuch", kEnvelope, {"-u", "prod:x"});
  EXPECT_EQ(missing.status, 200) << missing.body;
  EXPECT_EQ(missing.json()["error_class"], "LW::Exception::API::InvalidMethod");
  auto before = storm_->Counters();
  Answer garbage = Curl("/v1/Utilities/Info/ping", "{not json", {"-u", "prod:x"});
  EXPECT_EQ(garbage.status, 400) << garbage.body;
  EXPECT_EQ(garbage.json()["error_class"], "LW::Exception::Deserialize");
  Answer not_a_map = Curl("/v1/Utilities/Info/ping", R"({"params": [1]})", {"-u", "prod:x"});
  EXPECT_EQ(not_a_map.status, 400) << not_a_map.body;
  Answer bad_path = Curl("/v1/Utilities//ping", kEnvelope, {"-u", "prod:x"});
  EXPECT_EQ(bad_path.status, 400) << bad_path.body;
  EXPECT_EQ(Curl("/v2/Utilities/Info/ping", kEnvelope, {"-u", "prod:x"}).status, 404);
  std::string huge = dir_.Write("huge.json", R"({"params": {"x": ")" + std::string(2 << 20, 'x') + R"("}})");
  Answer too_large = Curl("/v1/Utilities/Info/ping", "@" + huge, {"-u", "prod:x"});
  EXPECT_EQ(too_large.status, 413) << too_large.body;
  EXPECT_EQ(too_large.json()["error_class"], "StormBroker::RequestTooLarge");
  Answer encoding = Curl("/v1/Utilities/Info/ping.xml", kEnvelope, {"-u", "prod:x"});
  EXPECT_EQ(encoding.json()["error_class"], "LW::Exception::API::InvalidEncoding");
  Answer get = Parse(RunCommand({"/usr/bin/curl", "-s", "--unix-socket", http_socket_, "-o", "-", "-w", "\n%{http_code}",
                                 "http://broker/v1/Utilities/Info/ping"}));
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(storm_->Counters(), before) << "nothing refused went upstream";
  int invalid = CountAudited([](const nlohmann::json& r) {
    return r["decision"] == "invalid" && r["listener"] == "http-unix";
  }, 7);
  EXPECT_EQ(invalid, 7) << "every refused request is audited";
}

TEST_F(HttpDoorTest, LoopbackTcpKnowsTheCallerAndPolicyDecides) {
  StartBroker(Config());
  Answer root = Python("/v1/Utilities/Info/ping", kEnvelope);
  EXPECT_EQ(root.status, 400) << "two accounts and none named: " << root.body;
  Answer as_root = Curl("/v1/Utilities/Info/ping", kEnvelope, {"-u", "prod:x"});
  EXPECT_EQ(as_root.status, 200);

  YAML::Node config = Config();
  config["accounts"].remove("staging");  // one account: a client needs no username
  StartBroker(config);
  EXPECT_EQ(Python("/v1/Utilities/Info/ping", kEnvelope).status, 200);
  Answer nobody = Python("/v1/Utilities/Info/ping", kEnvelope, kNobody);
  EXPECT_EQ(nobody.status, 403) << nobody.body;
  EXPECT_EQ(nobody.json()["error_class"], "StormBroker::PermissionDenied");
  EXPECT_NE(nobody.json()["full_message"].get<std::string>().find("uid 65534"), std::string::npos) << nobody.body;
  bool audited = CountAudited([](const nlohmann::json& r) {
    return r["uid"] == 65534 && r["listener"] == "http-tcp" && r["decision"] == "deny";
  }, 1) == 1;
  EXPECT_TRUE(audited) << "the refusal is audited with the caller's uid";

  config["policy"].push_back(YAML::Load(R"({uids: [65534], accounts: [prod], methods: ["Utilities/Info/*"]})"));
  dir_.Write("stormbroker.yaml", harness::ToYaml(config));
  kill(broker_->process().pid(), SIGHUP);
  for (int i = 0; i < 100 && broker_->Log().find("applied now: policy") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Python("/v1/Utilities/Info/ping", kEnvelope, kNobody).status, 200) << broker_->Log();
}

// Socket activation: systemd passes the doors by name (FileDescriptorName=
// grpc, and http for both HTTP sockets); the configured ones are not made.
TEST_F(HttpDoorTest, ServesTheDoorsSystemdPasses) {
  std::filesystem::create_directories(dir_.path() + "/run");
  std::string grpc_socket = dir_.path() + "/run/activated.sock";
  YAML::Node config = Config();
  config["accounts"].remove("staging");
  config["listen"]["http_socket"] = dir_.path() + "/run/configured-http.sock";
  config["listen"]["http"] = "127.0.0.1:" + std::to_string(harness::FreePort());
  broker_ = std::make_unique<harness::Broker>(
      dir_, config, std::map<std::string, std::string>{},
      std::vector<std::string>{"/usr/bin/systemd-socket-activate", "--listen=" + grpc_socket,
                               "--listen=" + http_socket_, "--listen=127.0.0.1:" + std::to_string(port_),
                               "--fdname=grpc:http:http"});
  ASSERT_TRUE(harness::Eventually([&] { return std::filesystem::exists(http_socket_); }));
  Answer unix_door = Curl("/v1/Utilities/Info/ping", kEnvelope);  // the first connection starts the daemon
  EXPECT_EQ(unix_door.status, 200) << unix_door.body << broker_->Log();
  EXPECT_EQ(Python("/v1/Utilities/Info/ping", kEnvelope).status, 200) << broker_->Log();
  auto grpc = stormbroker::client::Client::Connect(grpc_socket)->Call("prod", "Utilities/Info/ping", {});
  EXPECT_TRUE(grpc.ok()) << grpc.error().message;
  EXPECT_NE(broker_->Log().find("HTTP door on the Unix socket systemd passed"), std::string::npos) << broker_->Log();
  EXPECT_NE(broker_->Log().find("on the loopback socket systemd passed"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(config["listen"]["http_socket"].as<std::string>()));
}

TEST_F(HttpDoorTest, HttpsForClientsThatInsistOnIt) {
  YAML::Node config = Config();
  config["accounts"].remove("staging");
  std::string certs = storm_->ca_file().substr(0, storm_->ca_file().rfind('/'));
  config["listen"]["http_tls"]["cert_file"] = certs + "/server.pem";
  config["listen"]["http_tls"]["key_file"] = dir_.Write("door.key", harness::ReadFile(certs + "/server.key"), 0600);
  StartBroker(config);
  Answer over_tls = Python("/v1/Utilities/Info/ping", kEnvelope, std::nullopt, /*tls=*/true);
  EXPECT_EQ(over_tls.status, 200) << over_tls.body << broker_->Log();
  EXPECT_EQ(over_tls.json(), nlohmann::json({{"ping", "success"}}));
  Answer refused = Python("/v1/Utilities/Info/ping", kEnvelope, kNobody, /*tls=*/true);
  EXPECT_EQ(refused.status, 403) << "the owner of a TLS connection is known as well";
}

// One core behind both doors: the same params get the same answer, whether
// gRPC or the Storm API's own paths carried them, and one limit refuses
// both alike.
TEST_F(HttpDoorTest, TheSameParamsGetTheSameAnswerThroughEitherDoor) {
  StartBroker(Config());
  for (size_t size : {size_t{100} << 10, size_t{300} << 10}) {
    SCOPED_TRACE(size);
    nlohmann::json params = {{"blob", std::string(size, 'x')}};
    auto grpc = broker_->Connect()->Call("prod", "Utilities/Info/ping", params);
    std::string file = dir_.Write("params.json", nlohmann::json({{"params", params}}).dump());
    Answer http = Curl("/v1/Utilities/Info/ping", "@" + file, {"-u", "prod:x"});
    if (size < (256 << 10)) {
      ASSERT_TRUE(grpc.ok()) << grpc.error().message;
      EXPECT_EQ(http.status, 200) << http.body;
      EXPECT_EQ(http.json(), grpc->result);
      EXPECT_EQ(http.json(), nlohmann::json({{"ping", "success"}}));
    } else {
      ASSERT_FALSE(grpc.ok());
      EXPECT_EQ(grpc.error().code, stormbroker::client::ErrorCode::kInvalidArgument);
      EXPECT_EQ(http.status, 400) << http.body;
      EXPECT_EQ(http.json()["full_message"], grpc.error().message);
      EXPECT_NE(grpc.error().message.find("limits.max_params_size"), std::string::npos) << grpc.error().message;
    }
  }
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 2) << "the 100 KiB call from each door, nothing more";
}

TEST_F(HttpDoorTest, NoSecretInAnswersLogOrAudit) {
  StartBroker(Config());
  std::string seen;
  seen += Curl("/v1/Account/Auth/token", kEnvelope, {"-u", "prod:" + std::string(kClientSecret)}).body;
  seen += Curl("/v1/Utilities/Info/ping", kEnvelope, {"-u", "prod:" + std::string(kClientSecret)}).body;
  seen += Curl("/v1/Storm/Server/list", kEnvelope, {"-u", "staging:" + std::string(kClientSecret)}).body;
  seen += Python("/v1/Utilities/Info/ping", R"({"params": {"password": "hunter2"}})").body;
  broker_->process().Stop(SIGTERM);
  std::string everything = seen + broker_->Log() + harness::ReadFile(audit_);
  std::vector<std::string> secrets = {kPassword, kStagingPassword, kClientSecret};
  for (const auto& token : storm_->IssuedTokens()) secrets.push_back(token);
  for (const auto& secret : secrets) {
    EXPECT_EQ(everything.find(secret), std::string::npos) << "a secret reached an answer, the log or the audit";
  }
}

}  // namespace
