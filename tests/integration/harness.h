// Test harness for end-to-end tests: real processes (fake_storm, stormbrokerd,
// stormctl) in a temporary directory, talking over real sockets.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <optional>

#include <chrono>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "stormbroker/client.h"

namespace harness {

// A directory under /tmp, world-searchable (so clients run as other users can
// reach sockets in it), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& content, mode_t mode = 0644) const;

 private:
  std::string path_;
};

// A child process. Its stdout goes to a pipe (read with ReadLine) or a file;
// its stderr to a file. Killed (SIGKILL) on destruction if still running.
class Process {
 public:
  // `env` is added to the inherited environment.
  Process(const std::vector<std::string>& argv, const std::string& stderr_path, bool pipe_stdout,
          const std::map<std::string, std::string>& env = {});
  ~Process();
  pid_t pid() const { return pid_; }
  // One line of stdout (without the newline), waiting up to `timeout`.
  std::string ReadLine(std::chrono::milliseconds timeout);
  // Sends `signal` and waits for the exit; returns the wait status.
  int Stop(int signal = SIGTERM);
  bool Running();

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffered_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// `argv` run as `uid` (gid the same, no supplementary groups) through
// setpriv, with `env` set: a caller of another uid, for tests that start it
// as a Process of its own.
std::vector<std::string> AsUid(uid_t uid, const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env = {});

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion, optionally as another uid (through setpriv,
// with the user's groups as a login gives them), with `stdin_text` on its stdin.
RunResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_text = "",
              std::optional<uid_t> as_uid = std::nullopt, std::map<std::string, std::string> env = {});

struct StormUser {
  std::string username;
  std::string password;
  std::string totp_secret;
};

struct HttpResult {
  long status = 0;          // 0 when no response came
  std::string body;
  std::string date_header;
  std::string transport_error;  // libcurl's words when no response came
};

// The upstream emulator over HTTPS with a fresh CA (or plain HTTP with --plain).
class FakeStorm {
 public:
  FakeStorm(const TempDir& dir, const std::vector<StormUser>& users, const std::vector<std::string>& extra_flags = {});
  ~FakeStorm();
  const std::string& url() const { return url_; }
  const std::string& ca_file() const { return ca_file_; }
  nlohmann::json Counters() const;
  nlohmann::json Tokens() const;
  // Every token the emulator ever issued (live, expired or revoked).
  std::vector<std::string> IssuedTokens() const;
  // Kills `token` (every token when empty); returns how many died.
  int Revoke(const std::string& token = "");
  // How many calls of `method` (lower case) were authenticated with `kind`
  // (password, password+passcode, token); throws for a method or kind the
  // emulator does not count, so a typo cannot pass as "no calls".
  long long Count(const std::string& method, const std::string& kind) const;
  // Arms a fault (see fake_storm --help); throws unless the emulator took it.
  void Arm(const std::string& fault) const;
  // A control request (see fake_storm --help); the answer's JSON, and its
  // HTTP status in `status` when given.
  nlohmann::json Control(const std::string& verb, const std::string& path, const std::string& body = "",
                         long* status = nullptr) const;
  // An API request straight to the emulator, as a client of the API would.
  HttpResult Api(const std::string& path, const std::string& body, const std::string& user, const std::string& secret,
                 const std::string& passcode = "") const;
  Process& process() { return *process_; }

 private:
  std::unique_ptr<Process> process_;
  std::string url_, control_url_, ca_file_;
};

// nginx (Debian's nginx-light) in front of `upstream_url` (a plain
// emulator's http://127.0.0.1:PORT/v1), as an API's own front server: with
// `http2`, HTTPS with HTTP/2 (the test CA's certificate for 127.0.0.1);
// otherwise plain HTTP/1.1. It closes client connections idle for
// `keepalive_seconds` and, as nginx does by default, sends no Keep-Alive
// header. Each request is logged with its client connection's serial.
class NginxFront {
 public:
  NginxFront(const TempDir& dir, const std::string& upstream_url, bool http2, int keepalive_seconds);
  ~NginxFront();
  const std::string& url() const { return url_; }  // ..../v1
  // The client connections that carried requests, and the protocols seen
  // ("HTTP/1.1", "HTTP/2.0").
  std::set<std::string> Connections() const;
  std::set<std::string> Protocols() const;

 private:
  std::vector<std::vector<std::string>> Log() const;
  std::unique_ptr<Process> process_;
  std::string url_, log_;
};

// The daemon with `config` written as its config file. `env` is added to its
// environment; `prefix` goes before its command (e.g. setpriv, or
// systemd-socket-activate).
class Broker {
 public:
  Broker(const TempDir& dir, const YAML::Node& config, const std::map<std::string, std::string>& env = {},
         const std::vector<std::string>& prefix = {});
  ~Broker();
  const std::string& socket_path() const { return socket_path_; }
  const std::string& config_path() const { return config_path_; }
  std::string Log() const;
  Process& process() { return *process_; }
  std::unique_ptr<stormbroker::client::Client> Connect() const { return stormbroker::client::Client::Connect(socket_path_); }
  // Waits until every account reports `state`; false on timeout.
  bool WaitForState(const std::string& state, std::chrono::milliseconds timeout = std::chrono::seconds(15));

 private:
  std::string socket_path_, config_path_, log_path_;
  std::unique_ptr<Process> process_;
};

// A config for one account "prod" (username deploy-bot, token_timeout 1h)
// on `storm`, served on `socket` (mode 0666), where root may do everything:
// a document that tests edit before it is written, e.g.
//   config["accounts"]["prod"]["token_timeout"] = "2s";
YAML::Node BasicConfig(const std::string& socket, const FakeStorm& storm, const std::string& password_file);
// The same for an upstream at `url` whose CA is `ca_file` (one not started yet).
YAML::Node BasicConfig(const std::string& socket, const std::string& url, const std::string& ca_file,
                       const std::string& password_file);
// `config` as the YAML text of a config file.
std::string ToYaml(const YAML::Node& config);
// `config` with the key at `path` set to `value`, e.g.
//   With(Config(), {"accounts", "prod", "token_timeout"}, "2s")
YAML::Node With(YAML::Node config, const std::vector<std::string>& path, const std::string& value);

// Whether `condition` holds within `timeout`, asked every 20 ms: for
// waiting on another process (never a fixed sleep).
bool Eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The audit trail at `path`, a record a line (a line cut short, as the
// writer writes it, is left for the next read).
std::vector<nlohmann::json> ReadAudit(const std::string& path);
// The records at `path` once `ready` holds of them, asked every 20 ms for at
// most `within`. The daemon writes each record on its writer thread just
// after it answers, so a test waits for the records it expects, never for a
// fixed time; when `ready` never holds, what was read last (the test's own
// checks then say what is missing). The writer keeps the order of requests:
// once the record of a test's last request is there, so are all before it.
std::vector<nlohmann::json> AuditWhen(const std::string& path,
                                      const std::function<bool(const std::vector<nlohmann::json>&)>& ready,
                                      std::chrono::milliseconds within = std::chrono::seconds(5));
// How many records at `path` `match`, once at least `expected` do (or after `within`).
int CountAudited(const std::string& path, const std::function<bool(const nlohmann::json&)>& match, int expected,
                 std::chrono::milliseconds within = std::chrono::seconds(5));

std::string Binary(const std::string& name);  // path of a built program
int FreePort();                               // a loopback TCP port nobody listens on now
std::string Version();                        // the version the project builds (CMake's)
std::string ReadFile(const std::string& path);  // the whole file; empty when it cannot be read
std::string Base64Decode(const std::string& text);  // standard alphabet, padding optional
// A test CA, a server certificate for 127.0.0.1 and localhost and a client
// certificate (tests/fake_storm/make_test_ca), copied into `into`; made
// once per test binary.
void CopyTestCa(const std::string& into);

// `clients` threads each call Utilities/Info/ping on account "prod" through
// `broker` until `duration` has passed, while `meanwhile` runs on this
// thread. Returns what went wrong (broker errors and API errors), and counts
// the calls that succeeded in `ok`.
std::vector<std::string> Hammer(const Broker& broker, int clients, std::chrono::milliseconds duration,
                                std::atomic<int>* ok, const std::function<void()>& meanwhile = [] {});

// Joins `thread` however the test ends (a failed ASSERT returns early, and
// a joinable thread's destructor would end the process).
struct JoinAtEnd {
  std::thread& thread;
  ~JoinAtEnd() {
    if (thread.joinable()) thread.join();
  }
};

// What most end-to-end suites start from: a temporary directory, the
// emulator with the user deploy-bot, and the daemon on DIR/run/broker.sock
// with BasicConfig as each test edits it.
class BrokerTest : public ::testing::Test {
 protected:
  // The emulator with deploy-bot, whose `password` the daemon reads from
  // DIR/prod.password; a `totp_secret` makes it a two-factor user. `flags`
  // go to fake_storm.
  void StartStorm(const std::string& password, const std::string& totp_secret = "",
                  std::vector<std::string> flags = {});
  // BasicConfig for this emulator and password file.
  YAML::Node Config() const;
  // Starts the daemon with `config` and waits until every account is `wait_for`.
  void StartBroker(const YAML::Node& config, const std::string& wait_for = "active");
  void StartBroker() { StartBroker(Config()); }
  // stormctl on this daemon's socket.
  RunResult Ctl(std::vector<std::string> args, const std::string& input = "") const;

  TempDir dir_;
  std::unique_ptr<FakeStorm> storm_;
  std::unique_ptr<Broker> broker_;
  std::string socket_ = dir_.path() + "/run/broker.sock";
  std::string password_file_;
};

}  // namespace harness
