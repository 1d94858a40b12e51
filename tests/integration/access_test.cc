// Caller identity, policy and audit on a shared build server: clients run as
// real users and groups made for the test, the daemon decides from the
// kernel's word on who they are, and every decision lands in the audit file.
//
// These tests add system users (sbtest-*), so CTest runs them one at a time
// (RESOURCE_LOCK) and they remove the users when done.

#include <algorithm>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr const char* kProdPassword = "prod-pw-!9f3";
constexpr const char* kStagingPassword = "staging-pw-#21";
const char* kUsers[] = {"sbtest-alice", "sbtest-bob", "sbtest-carol"};

uid_t Uid(const std::string& name) {
  struct passwd* pw = getpwnam(name.c_str());
  if (!pw) throw std::runtime_error("no user " + name);
  return pw->pw_uid;
}

class AccessTest : public harness::BrokerTest {
 protected:
  static void SetUpTestSuite() {
    RunCommand({"/usr/sbin/groupadd", "-f", "sbtest-builders"});
    for (const char* user : kUsers) {
      if (!getpwnam(user)) {
        std::vector<std::string> add = {"/usr/sbin/useradd", "--system", "--no-create-home", "--shell",
                                        "/usr/sbin/nologin", "--user-group"};
        if (std::string(user) == "sbtest-bob") add.insert(add.end(), {"--groups", "sbtest-builders"});
        add.push_back(user);
        auto result = RunCommand(add);
        ASSERT_EQ(result.exit_code, 0) << result.err;
      }
    }
  }
  static void TearDownTestSuite() {
    for (const char* user : kUsers) RunCommand({"/usr/sbin/userdel", user});
    RunCommand({"/usr/sbin/groupdel", "sbtest-builders"});
  }

  void SetUp() override {
    storm_ = std::make_unique<harness::FakeStorm>(
        dir_, std::vector<harness::StormUser>{{"deploy-bot", kProdPassword, ""}, {"stage-bot", kStagingPassword, ""}});
    password_file_ = dir_.Write("prod.pw", kProdPassword, 0600);
    audit_path_ = dir_.path() + "/audit.jsonl";
    StartBroker(Config(Policy()));
  }

  YAML::Node Policy() const {
    YAML::Node rules = YAML::Load(R"([
        {users: [sbtest-alice], accounts: [prod], methods: ["Utilities/Info/*"]},
        {groups: [sbtest-builders], accounts: [staging], methods: ["storm/server/*"]},
        {accounts: ["*"], methods: ["Utilities/Info/ping"], admin: true},
        {users: [root], accounts: ["*"], methods: ["*"], admin: true, token_export: true}])");
    rules[2]["uids"].push_back(Uid("sbtest-carol"));
    return rules;
  }
  // Two accounts, prod and staging, audited to a file, under `policy`.
  YAML::Node Config(const YAML::Node& policy) const {
    YAML::Node config = BrokerTest::Config();
    config["audit"]["file"] = audit_path_;
    config["accounts"]["staging"]["username"] = "stage-bot";
    config["accounts"]["staging"]["password_file"] = dir_.Write("staging.pw", kStagingPassword, 0600);
    config["policy"] = policy;
    return config;
  }

  harness::RunResult As(const std::string& user, std::vector<std::string> args) {
    args.insert(args.begin(), {Binary("stormctl"), "--socket", socket_});
    std::optional<uid_t> uid;
    if (user != "root") uid = user == "nobody" ? 65534 : Uid(user);
    return RunCommand(args, "", uid);
  }

  // The audit records, once root's last token export (each test's last
  // request) is among them: the writer keeps order, so all before it are.
  std::vector<nlohmann::json> AuditThroughRootsToken() {
    return harness::AuditWhen(audit_path_, [](const std::vector<nlohmann::json>& records) {
      return std::any_of(records.begin(), records.end(), [](const nlohmann::json& r) {
        return r.value("rpc", "") == "GetToken" && r.value("uid", -1) == 0;
      });
    });
  }

  // Sends SIGHUP and waits for the daemon to say how the reload went.
  bool Reload(const std::string& expect_in_log) {
    kill(broker_->process().pid(), SIGHUP);
    return harness::Eventually([&] { return broker_->Log().find(expect_in_log) != std::string::npos; });
  }

  std::string audit_path_;
};

struct Case {
  std::string user;
  std::vector<std::string> args;
  int exit_code;
  std::string rpc, account, method, decision;
};

TEST_F(AccessTest, PolicyDecidesByUidUserGroupAccountAndMethodAndAuditsEachCase) {
  const std::vector<Case> cases = {
      {"sbtest-alice", {"call", "--account", "prod", "Utilities/Info/ping"}, 0, "Call", "prod", "Utilities/Info/ping", "allow"},
      {"sbtest-alice", {"call", "--account", "prod", "Storm/Server/list"}, 5, "Call", "prod", "Storm/Server/list", "deny"},
      {"sbtest-alice", {"call", "--account", "staging", "Utilities/Info/ping"}, 5, "Call", "staging", "Utilities/Info/ping", "deny"},
      {"sbtest-bob", {"call", "--account", "staging", "Storm/Server/list"}, 0, "Call", "staging", "Storm/Server/list", "allow"},
      {"sbtest-bob", {"call", "--account", "prod", "Storm/Server/list"}, 5, "Call", "prod", "Storm/Server/list", "deny"},
      {"sbtest-carol", {"call", "--account", "staging", "utilities/info/PING"}, 0, "Call", "staging", "utilities/info/PING", "allow"},
      {"sbtest-carol", {"call", "--account", "staging", "Utilities/Info/version"}, 5, "Call", "staging", "Utilities/Info/version", "deny"},
      {"nobody", {"call", "--account", "prod", "Utilities/Info/ping"}, 5, "Call", "prod", "Utilities/Info/ping", "deny"},
      {"sbtest-alice", {"login", "prod"}, 5, "Login", "prod", "", "deny"},
      {"sbtest-carol", {"login", "prod"}, 0, "Login", "prod", "", "allow"},
      {"sbtest-alice", {"logout", "prod"}, 5, "Logout", "prod", "", "deny"},
      {"sbtest-alice", {"token", "prod"}, 5, "GetToken", "prod", "", "deny"},
      {"sbtest-carol", {"token", "prod"}, 5, "GetToken", "prod", "", "deny"},
      {"root", {"token", "prod"}, 0, "GetToken", "prod", "", "allow"},
  };
  for (const auto& c : cases) {
    auto result = As(c.user, c.args);
    EXPECT_EQ(result.exit_code, c.exit_code) << c.user << " " << c.args[0] << ": " << result.err;
    if (c.exit_code == 5) {
      EXPECT_NE(result.err.find("permission denied"), std::string::npos) << result.err;
    }
  }
  auto records = AuditThroughRootsToken();
  for (const auto& c : cases) {
    uid_t uid = c.user == "root" ? 0 : c.user == "nobody" ? 65534 : Uid(c.user);
    int found = 0;
    for (const auto& r : records) {
      if (r["uid"] == uid && r["rpc"] == c.rpc && r["account"] == c.account && r.value("method", "") == c.method) {
        ++found;
        EXPECT_EQ(r["decision"], c.decision) << r.dump();
        EXPECT_EQ(r["user"], c.user) << r.dump();
        EXPECT_EQ(r["exe_hint"], Binary("stormctl")) << r.dump();
        EXPECT_EQ(r["comm_hint"], "stormctl") << r.dump();
        EXPECT_EQ(r["listener"], "grpc") << r.dump();
        EXPECT_GT(r["pid"].get<int>(), 0);
        if (c.decision == "allow" && c.rpc == "Call") {
          EXPECT_EQ(r["outcome"], "ok") << r.dump();
          EXPECT_GT(r["rule_line"].get<int>(), 0);
        }
      }
    }
    EXPECT_EQ(found, 1) << "audit records for " << c.user << " " << c.rpc << " " << c.method;
  }
  // The exported token is the live one upstream.
  auto token = As("root", {"token", "prod"});
  bool live = false;
  for (const auto& t : storm_->Tokens()) live = live || t["token"] == token.out.substr(0, token.out.size() - 1);
  EXPECT_TRUE(live) << token.out;
}

TEST_F(AccessTest, AuditHoldsParamNamesNeverValuesOrSecrets) {
  auto result = As("root", {"call", "--account", "staging", "Storm/Server/list", "page_size=5",
                            "note=\"PARAM-VALUE-7731\""});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  As("root", {"call", "--account", "prod", "Bad/Method/x"});
  As("root", {"token", "prod"});
  auto records = AuditThroughRootsToken();
  std::ifstream in(audit_path_);
  std::stringstream text;
  text << in.rdbuf();
  bool saw_names = false;
  for (const auto& r : records) {
    if (r.value("method", "") == "Storm/Server/list") {
      saw_names = true;
      EXPECT_EQ(r["params"], nlohmann::json({"note", "page_size"}));
    }
    if (r.value("method", "") == "Bad/Method/x") {
      EXPECT_EQ(r["outcome"], "api_error");
      EXPECT_EQ(r["error_class"], "LW::Exception::API::InvalidMethod");
    }
  }
  EXPECT_TRUE(saw_names);
  std::string everything = text.str() + broker_->Log();
  EXPECT_EQ(everything.find("PARAM-VALUE-7731"), std::string::npos);
  for (const char* secret : {kProdPassword, kStagingPassword}) EXPECT_EQ(everything.find(secret), std::string::npos);
  for (const auto& t : storm_->Tokens()) {
    EXPECT_EQ(everything.find(t["token"].get<std::string>()), std::string::npos) << "a token in the audit or log";
  }
}

TEST_F(AccessTest, BadRequestsAreAuditedAsInvalidAndNeverSentUpstream) {
  auto before = storm_->Counters();
  // Over limits.max_params_size (256 KiB); in a file, since one argument of
  // that size is more than exec allows.
  std::string big = dir_.Write("big.json", R"({"blob": ")" + std::string(300 * 1024, 'x') + R"("})");
  const std::vector<std::vector<std::string>> requests = {
      {"call", "--account", "prod", "Utilities/../ping"},
      {"call", "--account", "prod", "Utilities/Info/ping?x=1"},
      {"call", "--account", "../prod", "Utilities/Info/ping"},
      {"call", "--account", "prod", "Utilities/Info/ping", "--params", big},
  };
  for (const auto& args : requests) {
    auto result = As("root", args);
    EXPECT_EQ(result.exit_code, 2) << args[3];
    EXPECT_NE(result.err.find("invalid request"), std::string::npos) << result.err;
  }
  EXPECT_EQ(storm_->Counters(), before);
  EXPECT_EQ(harness::CountAudited(audit_path_, [](const nlohmann::json& r) { return r["decision"] == "invalid"; }, 4), 4);
}

TEST_F(AccessTest, ReloadChangesThePolicyForNewCallsAndABrokenFileChangesNothing) {
  EXPECT_EQ(As("sbtest-alice", {"call", "--account", "prod", "Storm/Server/list"}).exit_code, 5);
  YAML::Node policy = Policy();
  policy.push_back(YAML::Load(R"({users: [sbtest-alice], accounts: [prod], methods: ["Storm/Server/*"]})"));
  dir_.Write("stormbroker.yaml", harness::ToYaml(Config(policy)));
  ASSERT_TRUE(Reload("reloaded the policy")) << broker_->Log();
  EXPECT_NE(broker_->Log().find("applied now: policy"), std::string::npos) << broker_->Log();
  EXPECT_EQ(As("sbtest-alice", {"call", "--account", "prod", "Storm/Server/list"}).exit_code, 0);

  dir_.Write("stormbroker.yaml", "listen: [this is not\n");
  ASSERT_TRUE(Reload("reload rejected")) << broker_->Log();
  EXPECT_NE(broker_->Log().find("stormbroker.yaml:"), std::string::npos) << "the error names file:line";
  EXPECT_EQ(As("sbtest-alice", {"call", "--account", "prod", "Storm/Server/list"}).exit_code, 0)
      << "the last good policy stays";
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 2) << "no token was lost (one login per account)";
}

TEST_F(AccessTest, SocketGroupAndMode) {
  broker_.reset();
  YAML::Node config = Config(Policy());
  config["listen"]["mode"] = "0660";
  config["listen"]["group"] = "sbtest-builders";
  StartBroker(config);
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, getgrnam("sbtest-builders")->gr_gid);
  // The kernel lets only the group in; policy decides after that.
  auto alice = RunCommand({"/usr/bin/setpriv", "--reuid", "sbtest-alice", "--regid", "sbtest-alice", "--init-groups",
                           Binary("stormctl"), "--socket", socket_, "accounts"});
  EXPECT_EQ(alice.exit_code, 2);
  EXPECT_NE(alice.err.find("Permission denied"), std::string::npos) << alice.err;
  auto bob = RunCommand({"/usr/bin/setpriv", "--reuid", "sbtest-bob", "--regid", "sbtest-bob", "--init-groups",
                         Binary("stormctl"), "--socket", socket_, "call", "--account", "staging", "Storm/Server/list"});
  EXPECT_EQ(bob.exit_code, 0) << bob.err;
}

}  // namespace
