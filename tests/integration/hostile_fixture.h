// The hostile callers' fixture: accounts, policy and helpers that the
// attack suites (hostile_caller_test.cc: the gRPC door and the files;
// hostile_doors_test.cc: the HTTP door, metrics and the fleet) share.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"

namespace hostile {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;
constexpr const char* kProdPassword = "prod-pw-hostile-1";
constexpr const char* kStagingPassword = "staging-pw-hostile-2";
constexpr const char* kTotpSecret = "JBSWY3DPEHPK3PXP";
constexpr const char* kMallory = "sbtest-mallory";
constexpr const char* kDeployers = "sbtest-deployers";

// How many of `fds` the other end has closed (what it sent first, such as
// gRPC's SETTINGS frame, is read and thrown away).
inline int Ended(const std::vector<int>& fds) {
  int count = 0;
  for (int fd : fds) {
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN)) ++count;
  }
  return count;
}

// A hostile caller as a process of its own (tests/integration/hostile_helper.py)
// running as `uid`; the numbers it prints are read in order with Next(). (Not
// a fork of this process: gRPC, which this process runs, does not survive one.)
class HostileProcess {
 public:
  HostileProcess(const harness::TempDir& dir, uid_t uid, const std::vector<std::string>& args)
      : process_(Argv(uid, args), dir.path() + "/hostile.log", /*pipe_stdout=*/true,
                 {{"PYTHONPATH", Binary("python_stubs")}}) {}
  long Next() { return std::stol(Line()); }
  std::string Line() { return process_.ReadLine(60s); }

 private:
  static std::vector<std::string> Argv(uid_t uid, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/python3", Binary("hostile_helper")};
    argv.insert(argv.end(), args.begin(), args.end());
    return harness::AsUid(uid, argv);
  }
  harness::Process process_;
};

class HostileCallerTest : public harness::BrokerTest {
 protected:
  static void SetUpTestSuite() {
    // shadow's tools give up at once when another holds /etc/group's lock:
    // try again until the user and its group are really there.
    std::string said;
    for (int attempt = 0; attempt < 50 && !MalloryIsADeployer(); ++attempt) {
      said = RunCommand({"/usr/sbin/groupadd", "-f", kDeployers}).err;
      if (!getpwnam(kMallory)) {
        said += RunCommand({"/usr/sbin/useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            "--user-group", "--groups", kDeployers, kMallory})
                    .err;
      } else {
        said += RunCommand({"/usr/sbin/usermod", "--append", "--groups", kDeployers, kMallory}).err;
      }
      if (!MalloryIsADeployer()) std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(MalloryIsADeployer()) << said;
  }
  static bool MalloryIsADeployer() {
    struct group* deployers = getgrnam(kDeployers);
    if (!deployers || !getpwnam(kMallory)) return false;
    for (char** member = deployers->gr_mem; *member; ++member) {
      if (std::string(*member) == kMallory) return true;
    }
    return false;
  }
  static void TearDownTestSuite() {
    RunCommand({"/usr/sbin/userdel", kMallory});
    RunCommand({"/usr/sbin/groupdel", kDeployers});
  }

  void SetUp() override {
    // Server data an upstream could send: control characters, deep nesting, bulk.
    std::string deep = std::string(100, '[') + std::string(100, ']');
    std::string servers = R"([{"uniq_id": "EVIL01", "domain": "evil\u001b]0;pwned\u0007\u001b[2J.example"},)"
                          R"( {"uniq_id": "DEEP01", "config": )" + deep + R"(},)"
                          R"( {"uniq_id": "BIG01", "notes": ")" + std::string(100 << 10, 'x') + R"("}])";
    storm_ = std::make_unique<harness::FakeStorm>(
        dir_,
        std::vector<harness::StormUser>{{"deploy-bot", kProdPassword, ""},
                                        {"stage-bot", kStagingPassword, ""},
                                        {"tfa-bot", "tfa-pw", kTotpSecret}},
        std::vector<std::string>{"--servers", dir_.Write("servers.json", servers)});
    password_file_ = dir_.Write("prod.pw", kProdPassword, 0600);
    audit_ = dir_.path() + "/audit.jsonl";
  }

  // Accounts prod, staging and tfa (two-factor by prompt), audited to a
  // file. Nobody may use prod for any method; mallory's group may ping
  // prod; root may do everything (admin, token export).
  YAML::Node Config() const {
    YAML::Node config = BrokerTest::Config();
    config["audit"]["file"] = audit_;
    config["accounts"]["staging"]["username"] = "stage-bot";
    config["accounts"]["staging"]["password_file"] = dir_.Write("staging.pw", kStagingPassword, 0600);
    config["accounts"]["tfa"]["username"] = "tfa-bot";
    config["accounts"]["tfa"]["two_factor"] = "prompt";
    config["accounts"]["tfa"]["password_file"] = dir_.Write("tfa.pw", "tfa-pw", 0600);
    config["policy"] = YAML::Load(R"([
        {uids: [65534], accounts: [prod], methods: ["*"]},
        {accounts: [prod], methods: [Utilities/Info/ping]},
        {users: [root], accounts: ["*"], methods: ["*"], admin: true, token_export: true}])");
    config["policy"][1]["groups"].push_back(kDeployers);
    return config;
  }
  // Config() with the key at `path` set to `value`.
  YAML::Node With(const std::vector<std::string>& path, const std::string& value) const {
    return harness::With(Config(), path, value);
  }

  void Start(const YAML::Node& config) {
    broker_ = std::make_unique<harness::Broker>(dir_, config);
    ASSERT_TRUE(WaitForActive("prod") && WaitForActive("staging")) << broker_->Log();
  }
  void Start() { Start(Config()); }

  bool WaitForActive(const std::string& account) {
    return harness::Eventually(
        [&] {
          if (!std::filesystem::exists(socket_)) return false;
          auto accounts = broker_->Connect()->ListAccounts();
          if (!accounts.ok()) return false;
          for (const auto& a : accounts.value()) {
            if (a.name == account && a.state == "active") return true;
          }
          return false;
        },
        15s);
  }

  harness::RunResult Ctl(std::vector<std::string> args, std::optional<uid_t> as = std::nullopt,
                         const std::string& stdin_text = "") {
    args.insert(args.begin(), {Binary("stormctl"), "--socket", socket_});
    return RunCommand(args, stdin_text, as);
  }

  // Every audit record so far (after the writer's batch time).
  // The audit records written so far (harness::AuditWhen and CountAudited
  // wait for those a test expects).
  std::vector<nlohmann::json> Audit() { return harness::ReadAudit(audit_); }
  int CountAudited(const std::function<bool(const nlohmann::json&)>& match, int expected) {
    return harness::CountAudited(audit_, match, expected);
  }

  std::vector<std::string> LiveTokens() {
    std::vector<std::string> tokens;
    for (const auto& t : storm_->Tokens()) tokens.push_back(t["token"].get<std::string>());
    std::sort(tokens.begin(), tokens.end());
    return tokens;
  }

  std::string audit_;
};

}  // namespace hostile
