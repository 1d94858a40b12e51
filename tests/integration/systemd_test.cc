// The daemon as systemd sees it, without systemd: the test plays the service
// manager (NOTIFY_SOCKET, WATCHDOG_USEC, CREDENTIALS_DIRECTORY) or uses
// systemd-socket-activate, and checks what a hardened service must show.

#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;
using namespace std::chrono_literals;

constexpr const char* kPassword = "systemd-pw-0xC0FFEE";

// A datagram socket where the daemon's sd_notify messages arrive.
class NotifyListener {
 public:
  explicit NotifyListener(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) throw std::runtime_error("bind");
    reader_ = std::thread([this] {
      char buffer[4096];
      for (;;) {
        ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) return;
        std::lock_guard<std::mutex> lock(mutex_);
        messages_.emplace_back(buffer, n);
      }
    });
  }
  ~NotifyListener() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    reader_.join();
  }
  std::vector<std::string> Messages() {
    std::lock_guard<std::mutex> lock(mutex_);
    return messages_;
  }
  // Index of the first message at or after `from` containing `text`, waiting up to `timeout`.
  int WaitFor(const std::string& text, size_t from = 0, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto messages = Messages();
      for (size_t i = from; i < messages.size(); ++i) {
        if (messages[i].find(text) != std::string::npos) return static_cast<int>(i);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

 private:
  std::string path_;
  int fd_;
  std::thread reader_;
  std::mutex mutex_;
  std::vector<std::string> messages_;
};

class SystemdTest : public harness::BrokerTest {
 protected:
  void SetUp() override { StartStorm(kPassword); }
};

TEST_F(SystemdTest, NotifiesReadyStatusWatchdogReloadingAndStoppingInOrder) {
  NotifyListener notify(dir_.path() + "/notify.sock");
  broker_ = std::make_unique<harness::Broker>(
      dir_, Config(), std::map<std::string, std::string>{{"NOTIFY_SOCKET", dir_.path() + "/notify.sock"},
                                                         {"WATCHDOG_USEC", "400000"}});
  int ready = notify.WaitFor("READY=1");
  ASSERT_GE(ready, 0) << broker_->Log();
  EXPECT_NE(notify.Messages()[ready].find("STATUS=1 account: 1 active"), std::string::npos) << notify.Messages()[ready];
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "READY only once the account holds a token";
  // The socket serves by then.
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/ping", {}).ok());

  // Watchdog pings keep coming, several per WATCHDOG_USEC: five within
  // 2.5 of them.
  int pings = 0;
  EXPECT_TRUE(harness::Eventually(
      [&] {
        pings = 0;
        for (const auto& m : notify.Messages()) pings += m == "WATCHDOG=1";
        return pings >= 5;
      },
      std::chrono::milliseconds(1000)))
      << pings << " pings";

  size_t before_reload = notify.Messages().size();
  kill(broker_->process().pid(), SIGHUP);
  int reloading = notify.WaitFor("RELOADING=1", before_reload);
  ASSERT_GE(reloading, 0);
  EXPECT_GT(notify.WaitFor("READY=1", reloading + 1), reloading);

  size_t before_stop = notify.Messages().size();
  kill(broker_->process().pid(), SIGTERM);
  EXPECT_GE(notify.WaitFor("STOPPING=1", before_stop), 0);
  EXPECT_EQ(broker_->process().Stop(0), 0);
}

TEST_F(SystemdTest, ReadySaysWhyWhenAnAccountFailedForGood) {
  NotifyListener notify(dir_.path() + "/notify.sock");
  password_file_ = dir_.Write("wrong.password", "nope", 0600);
  broker_ = std::make_unique<harness::Broker>(
      dir_, Config(), std::map<std::string, std::string>{{"NOTIFY_SOCKET", dir_.path() + "/notify.sock"}});
  int ready = notify.WaitFor("READY=1");
  ASSERT_GE(ready, 0) << broker_->Log();
  EXPECT_NE(notify.Messages()[ready].find("1 login-failed; prod: "), std::string::npos) << notify.Messages()[ready];
}

TEST_F(SystemdTest, ServesOnTheSocketSystemdPasses) {
  std::string activated = dir_.path() + "/activated.sock";
  broker_ = std::make_unique<harness::Broker>(
      dir_, Config(), std::map<std::string, std::string>{},
      std::vector<std::string>{"/usr/bin/systemd-socket-activate", "--listen=" + activated});
  ASSERT_TRUE(harness::Eventually([&] { return std::filesystem::exists(activated); }));
  auto outcome = stormbroker::client::Client::Connect(activated)->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message << broker_->Log();
  EXPECT_EQ(outcome->result["ping"], "success");
  EXPECT_NE(broker_->Log().find("on the socket systemd passed"), std::string::npos) << broker_->Log();
  EXPECT_FALSE(std::filesystem::exists(socket_)) << "listen.socket must not be created under socket activation";
}

TEST_F(SystemdTest, TheProxyDoorServesTheSocketSystemdPasses) {
  // As stormbrokerd-https-proxy.socket passes it; the config names no
  // address, only where the CA lives.
  YAML::Node config = Config();
  std::string ca = dir_.path() + "/proxy-ca.pem";
  config["listen"]["https_proxy"]["ca_cert_file"] = ca;
  config["listen"]["https_proxy"]["ca_key_file"] = dir_.path() + "/proxy-ca.key";
  std::string activated = dir_.path() + "/activated.sock";
  int port = harness::FreePort();
  broker_ = std::make_unique<harness::Broker>(
      dir_, harness::With(config, {"listen", "socket"}, activated), std::map<std::string, std::string>{},
      std::vector<std::string>{"/usr/bin/systemd-socket-activate", "--listen=" + activated,
                               "--listen=127.0.0.1:" + std::to_string(port), "--fdname=grpc:https-proxy"});
  ASSERT_TRUE(harness::Eventually([&] { return std::filesystem::exists(activated); }));
  // The first connection starts the daemon; curl waits for its CONNECT's answer.
  harness::RunResult curl = harness::RunCommand({"/usr/bin/curl", "-sS", "--max-time", "20", "--proxy",
                               "http://127.0.0.1:" + std::to_string(port), "--cacert", ca, "-u", "prod:x",
                               "--data-binary", "{}", "https://api.stormondemand.com/v1/Utilities/Info/ping"});
  ASSERT_EQ(curl.exit_code, 0) << curl.err << broker_->Log();
  EXPECT_EQ(nlohmann::json::parse(curl.out), nlohmann::json({{"ping", "success"}}));
  EXPECT_NE(broker_->Log().find("HTTPS proxy door on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << broker_->Log();
}

TEST_F(SystemdTest, ACallWaitingInTheBacklogAtStartIsServedWithTheKeptToken) {
  YAML::Node config = harness::With(Config(), {"state_dir"}, dir_.path() + "/state");
  config["accounts"]["prod"]["expire_on_shutdown"] = false;
  config["listen"]["http_socket"] = dir_.path() + "/http.sock";  // starting a door takes a moment
  config["listen"]["http"] = "127.0.0.1:" + std::to_string(harness::FreePort());
  broker_ = std::make_unique<harness::Broker>(dir_, config);
  ASSERT_TRUE(broker_->WaitForState("active")) << broker_->Log();
  ASSERT_EQ(broker_->process().Stop(SIGTERM), 0);
  ASSERT_EQ(storm_->Count("account/auth/token", "password"), 1);
  // systemd-socket-activate starts the daemon once a caller connects, so
  // the calls are there before the daemon is, as in a restart under load
  // (twenty of them, and an HTTP door to start, widen the window).
  std::string activated = dir_.path() + "/activated.sock";
  broker_ = std::make_unique<harness::Broker>(
      dir_, config, std::map<std::string, std::string>{},
      std::vector<std::string>{"/usr/bin/systemd-socket-activate", "--listen=" + activated});
  ASSERT_TRUE(harness::Eventually([&] { return std::filesystem::exists(activated); }));
  std::vector<std::thread> callers;
  std::atomic<int> served{0};
  for (int i = 0; i < 20; ++i) {
    callers.emplace_back([&] {
      auto outcome = stormbroker::client::Client::Connect(activated)->Call("prod", "Utilities/Info/ping", {});
      if (outcome.ok() && outcome->result["ping"] == "success") ++served;
    });
  }
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(served, 20) << broker_->Log();
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "no login: the kept token serves" << broker_->Log();
}

TEST_F(SystemdTest, RestartsUnderCallersFailNoCallAndLogInNoMore) {
  YAML::Node config = harness::With(Config(), {"state_dir"}, dir_.path() + "/state");
  config["accounts"]["prod"]["expire_on_shutdown"] = false;
  std::string config_path = dir_.path() + "/restart.yaml";
  dir_.Write("restart.yaml", YAML::Dump(config));
  // The script holds the sockets as systemd does and restarts the daemon
  // under three callers: two grpcio clients (one busy, one mostly idle, both
  // reading their connection only during their own calls) and one HTTP
  // client with a connection per call.
  auto run = RunCommand({"/usr/bin/python3", Binary("restart_under_callers"), Binary("stormbrokerd"), config_path,
                         dir_.path(), "--restarts", "4", "--check"},
                        "", std::nullopt, {{"PYTHONPATH", Binary("python_stubs")}});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), 1) << "one login, then the kept token";
}

TEST_F(SystemdTest, PasswordFromACredential) {
  std::filesystem::create_directories(dir_.path() + "/creds");
  dir_.Write("creds/prod-password", std::string(kPassword) + "\n", 0400);
  YAML::Node config = Config();
  config["accounts"]["prod"].remove("password_file");
  config["accounts"]["prod"]["password_credential"] = "prod-password";
  broker_ = std::make_unique<harness::Broker>(
      dir_, config, std::map<std::string, std::string>{{"CREDENTIALS_DIRECTORY", dir_.path() + "/creds"}});
  ASSERT_TRUE(broker_->WaitForState("active")) << broker_->Log();
  // Without systemd's directory the config says what is missing.
  auto check = RunCommand({Binary("stormbrokerd"), "--config", broker_->config_path(), "--check-config"});
  EXPECT_NE(check.exit_code, 0);
  EXPECT_NE(check.err.find("$CREDENTIALS_DIRECTORY"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find(broker_->config_path() + ":"), std::string::npos) << check.err;
}

// Fires `count` calls at once; returns each call's gRPC-level result.
std::vector<stormbroker::client::Outcome<stormbroker::client::CallResult>> FireCalls(harness::Broker& broker, int count,
                                                                     std::function<void()> while_in_flight) {
  std::vector<std::optional<stormbroker::client::Outcome<stormbroker::client::CallResult>>> results(count);
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&, i] { results[i] = broker.Connect()->Call("prod", "Utilities/Info/ping", {}); });
  }
  while_in_flight();
  for (auto& t : threads) t.join();
  std::vector<stormbroker::client::Outcome<stormbroker::client::CallResult>> out;
  for (auto& r : results) out.push_back(std::move(*r));
  return out;
}

TEST_F(SystemdTest, SigtermWithFiftyCallsInFlightAnswersEachCleanlyWithinTheBound) {
  broker_ = std::make_unique<harness::Broker>(dir_, harness::With(Config(), {"shutdown_timeout"}, "1s"));
  ASSERT_TRUE(broker_->WaitForState("active")) << broker_->Log();
  storm_->Arm(R"({"kind":"delay","delay_ms":4000,"count":50,"method":"utilities/info/ping"})");
  std::chrono::steady_clock::duration took{};
  int status = -1;
  auto results = FireCalls(*broker_, 50, [&] {
    harness::Eventually([&] { return storm_->Count("utilities/info/ping", "token") == 50; }, 5s);
    ASSERT_EQ(storm_->Count("utilities/info/ping", "token"), 50) << "not all calls reached the upstream";
    auto start = std::chrono::steady_clock::now();
    status = broker_->process().Stop(SIGTERM);
    took = std::chrono::steady_clock::now() - start;
  });
  EXPECT_EQ(status, 0);
  EXPECT_LT(took, 1s + 2s + 3s) << "shutdown_timeout, then the cancel and the token expiry, are bounded";
  for (const auto& r : results) {
    ASSERT_FALSE(r.ok()) << "the upstream had not answered yet";
    EXPECT_EQ(r.error().code, stormbroker::client::ErrorCode::kUnavailable) << r.error().message;
    EXPECT_NE(r.error().message.find("shutting down"), std::string::npos) << r.error().message;
  }
}

TEST_F(SystemdTest, SigtermLetsCallsInFlightFinishWithinTheTimeout) {
  broker_ = std::make_unique<harness::Broker>(dir_, harness::With(Config(), {"shutdown_timeout"}, "10s"));
  ASSERT_TRUE(broker_->WaitForState("active")) << broker_->Log();
  storm_->Arm(R"({"kind":"delay","delay_ms":700,"count":50,"method":"utilities/info/ping"})");
  int status = -1;
  auto results = FireCalls(*broker_, 50, [&] {
    harness::Eventually([&] { return storm_->Count("utilities/info/ping", "token") == 50; }, 5s);
    status = broker_->process().Stop(SIGTERM);
  });
  EXPECT_EQ(status, 0);
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->result["ping"], "success");
  }
}

// Tries, as uid 65534, to ptrace `pid`; returns errno (0 when it worked).
int PtraceAsNobody(pid_t pid) {
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(250);
    _exit(ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) == 0 ? 0 : errno);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WEXITSTATUS(status);
}

TEST_F(SystemdTest, TheDaemonIsNotDumpableAndKeepsSecretsOutOfArgvAndEnvironment) {
  // Run it as an unprivileged user, as the unit does: then /proc/PID belongs
  // to root only because the daemon made itself non-dumpable.
  ASSERT_EQ(chown(password_file_.c_str(), 65534, 65534), 0);
  std::filesystem::create_directories(dir_.path() + "/run");
  ASSERT_EQ(chown((dir_.path() + "/run").c_str(), 65534, 65534), 0);
  broker_ = std::make_unique<harness::Broker>(
      dir_, Config(), std::map<std::string, std::string>{},
      std::vector<std::string>{"/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"});
  ASSERT_TRUE(broker_->WaitForState("active")) << broker_->Log();
  pid_t pid = broker_->process().pid();
  struct stat st {};
  ASSERT_EQ(stat(("/proc/" + std::to_string(pid) + "/status").c_str(), &st), 0);
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  uid_t runs_as = 0;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) runs_as = std::stoul(line.substr(5));
  }
  ASSERT_EQ(runs_as, 65534u) << "the daemon should run as nobody here";
  EXPECT_EQ(st.st_uid, 0u) << "/proc/PID of a non-dumpable process belongs to root";
  EXPECT_EQ(PtraceAsNobody(pid), EPERM) << "ptrace by the daemon's own uid must be refused";

  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  std::string exposed = read("/proc/" + std::to_string(pid) + "/environ") + read("/proc/" + std::to_string(pid) + "/cmdline");
  EXPECT_FALSE(exposed.empty());
  EXPECT_EQ(exposed.find(kPassword), std::string::npos);
  for (const auto& t : storm_->Tokens()) EXPECT_EQ(exposed.find(t["token"].get<std::string>()), std::string::npos);
  std::string limits = read("/proc/" + std::to_string(pid) + "/limits");
  EXPECT_NE(limits.find("Max core file size        0"), std::string::npos) << limits;
}

}  // namespace
