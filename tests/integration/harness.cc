#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace harness {
namespace {

[[noreturn]] void Die(const std::string& what) { throw std::runtime_error(what); }

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

std::vector<char*> CArgs(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return args;
}

}  // namespace

std::string Version() { return STORMBROKER_VERSION; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Base64Decode(const std::string& text) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : text) {
    size_t value = kAlphabet.find(c);
    if (value == std::string::npos) break;  // '=' padding
    bits = (bits << 6) | static_cast<unsigned>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::vector<nlohmann::json> ReadAudit(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (in.eof()) break;  // no newline yet: the writer is still writing it
    records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

std::vector<nlohmann::json> AuditWhen(const std::string& path,
                                      const std::function<bool(const std::vector<nlohmann::json>&)>& ready,
                                      std::chrono::milliseconds within) {
  std::vector<nlohmann::json> records;
  Eventually([&] { return ready(records = ReadAudit(path)); }, within);
  return records;
}

int CountAudited(const std::string& path, const std::function<bool(const nlohmann::json&)>& match, int expected,
                 std::chrono::milliseconds within) {
  int count = 0;
  AuditWhen(
      path,
      [&](const std::vector<nlohmann::json>& records) {
        count = static_cast<int>(std::count_if(records.begin(), records.end(), match));
        return count >= expected;
      },
      within);
  return count;
}

std::string Binary(const std::string& name) {
  // Another build's daemon or stormctl, e.g. to watch a new test fail on an
  // old version: STORMBROKER_TEST_DAEMON=/old/build/daemon/stormbrokerd.
  const char* other_daemon = std::getenv("STORMBROKER_TEST_DAEMON");
  const char* other_stormctl = std::getenv("STORMBROKER_TEST_STORMCTL");
  if (name == "fake_storm") return FAKE_STORM_BIN;
  if (name == "stormbrokerd") return other_daemon ? other_daemon : STORMBROKERD_BIN;
  if (name == "stormctl") return other_stormctl ? other_stormctl : STORMCTL_BIN;
  if (name == "client_example") return CLIENT_EXAMPLE_BIN;
  if (name == "make_test_ca") return MAKE_TEST_CA;
  if (name == "python_stubs") return PYTHON_STUBS_DIR;
  if (name == "python_ping") return PYTHON_PING;
  if (name == "grpc_probe") return GRPC_PROBE;
  if (name == "hostile_helper") return HOSTILE_HELPER;
  if (name == "restart_under_callers") return RESTART_UNDER_CALLERS;
  if (name == "line_caller") return LINE_CALLER;
  Die("unknown binary " + name);
}

TempDir::TempDir() {
  char pattern[] = "/tmp/stormbroker-test-XXXXXX";
  if (!mkdtemp(pattern)) Die("mkdtemp failed");
  path_ = pattern;
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::Write(const std::string& name, const std::string& content, mode_t mode) const {
  std::string full = path_ + "/" + name;
  std::ofstream(full) << content;
  chmod(full.c_str(), mode);
  return full;
}

Process::Process(const std::vector<std::string>& argv, const std::string& stderr_path, bool pipe_stdout,
                 const std::map<std::string, std::string>& env) {
  int out[2] = {-1, -1};
  if (pipe_stdout && pipe2(out, O_CLOEXEC) != 0) Die("pipe failed");
  auto args = CArgs(argv);
  pid_ = fork();
  if (pid_ < 0) Die("fork failed");
  if (pid_ == 0) {
    int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) dup2(err, 2);
    if (pipe_stdout) dup2(out[1], 1);
    else if (err >= 0) dup2(err, 1);
    for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
    execv(args[0], args.data());
    _exit(127);
  }
  if (pipe_stdout) {
    close(out[1]);
    stdout_fd_ = out[0];
  }
}

Process::~Process() {
  if (Running()) Stop(SIGKILL);
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool Process::Running() {
  if (reaped_) return false;
  if (waitpid(pid_, &wait_status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

int Process::Stop(int signal) {
  if (!reaped_) {
    kill(pid_, signal);
    waitpid(pid_, &wait_status_, 0);
    reaped_ = true;
  }
  return wait_status_;
}

std::string Process::ReadLine(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) Die("timed out waiting for a line of output");
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[4096];
    ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n <= 0) Die("process closed its output before printing a line");
    buffered_.append(chunk, n);
  }
}

std::vector<std::string> AsUid(uid_t uid, const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env) {
  std::vector<std::string> full = {"/usr/bin/setpriv", "--reuid", std::to_string(uid), "--regid", std::to_string(uid),
                                   "--clear-groups", "--", "/usr/bin/env"};
  for (const auto& [name, value] : env) full.push_back(name + "=" + value);
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

RunResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_text, std::optional<uid_t> as_uid,
              std::map<std::string, std::string> env) {
  std::vector<std::string> full;
  if (as_uid) {
    // The user's own primary and supplementary groups when it has an account
    // entry, as a login would give them.
    struct passwd* pw = getpwuid(*as_uid);
    gid_t gid = pw ? pw->pw_gid : *as_uid;
    full = {"/usr/bin/setpriv", "--reuid", std::to_string(*as_uid), "--regid", std::to_string(gid),
            pw ? "--init-groups" : "--clear-groups", "--"};
  }
  full.insert(full.end(), argv.begin(), argv.end());
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) Die("pipe failed");
  auto args = CArgs(full);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  (void)!write(in[1], stdin_text.data(), stdin_text.size());
  close(in[1]);
  RunResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 30'000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      char chunk[4096];
      ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(chunk, n);
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

void CopyTestCa(const std::string& into) {
  // Made once per test binary (RSA keys take a while), removed at exit.
  static const std::string made = [] {
    char pattern[] = "/tmp/stormbroker-test-ca-XXXXXX";
    std::string dir = mkdtemp(pattern);
    if (RunCommand({Binary("make_test_ca"), dir}).exit_code != 0) Die("make_test_ca failed");
    static std::string to_remove = dir;
    std::atexit([] { std::filesystem::remove_all(to_remove); });
    return dir;
  }();
  std::filesystem::create_directories(into);
  for (const char* file : {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"}) {
    std::filesystem::copy_file(made + "/" + file, into + "/" + file, std::filesystem::copy_options::overwrite_existing);
  }
}

FakeStorm::FakeStorm(const TempDir& dir, const std::vector<StormUser>& users,
                     const std::vector<std::string>& extra_flags) {
  std::string certs = dir.path() + "/certs";
  CopyTestCa(certs);
  ca_file_ = certs + "/ca.pem";
  std::string yaml;
  for (const auto& u : users) {
    yaml += "- username: \"" + u.username + "\"\n  password: \"" + u.password + "\"\n";
    if (!u.totp_secret.empty()) yaml += "  totp_secret: " + u.totp_secret + "\n";
  }
  std::string users_file = dir.Write("storm-users.yaml", yaml, 0600);
  std::vector<std::string> argv = {Binary("fake_storm"), "--port", "0", "--users", users_file,
                                   "--cert", certs + "/server.pem", "--key", certs + "/server.key"};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  process_ = std::make_unique<Process>(argv, dir.path() + "/fake_storm.log", /*pipe_stdout=*/true);
  std::string listening = process_->ReadLine(std::chrono::seconds(10));
  std::string control = process_->ReadLine(std::chrono::seconds(10));
  url_ = listening.substr(listening.rfind(' ') + 1);
  control_url_ = control.substr(control.rfind(' ') + 1);
}

FakeStorm::~FakeStorm() { process_->Stop(SIGTERM); }

NginxFront::NginxFront(const TempDir& dir, const std::string& upstream_url, bool http2, int keepalive_seconds) {
  std::string prefix = dir.path() + "/nginx";
  std::filesystem::create_directories(prefix + "/logs");
  std::string certs = dir.path() + "/certs";
  CopyTestCa(certs);
  log_ = prefix + "/access.log";
  int port = FreePort();
  std::string upstream = upstream_url.substr(std::string("http://").size());
  upstream = upstream.substr(0, upstream.find('/'));
  std::string listen = "listen 127.0.0.1:" + std::to_string(port) +
                       (http2 ? " ssl http2;\n    ssl_certificate " + certs + "/server.pem;\n    ssl_certificate_key " +
                                    certs + "/server.key;"
                              : ";");
  std::string config = "daemon off;\nuser root;\nerror_log " + prefix + "/error.log;\npid " + prefix +
                       "/nginx.pid;\nevents { worker_connections 1024; }\nhttp {\n"
                       "  log_format conn '$connection $server_protocol';\n  access_log " + log_ + " conn;\n"
                       "  client_body_temp_path " + prefix + "/body;\n  proxy_temp_path " + prefix + "/proxy;\n"
                       "  keepalive_timeout " + std::to_string(keepalive_seconds) + "s;\n"
                       "  upstream storm { server " + upstream + "; keepalive 64; keepalive_timeout 1s; }\n"
                       "  server {\n    " + listen + "\n"
                       "    location / { proxy_pass http://storm; proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n"
                       "  }\n}\n";
  std::string config_file = dir.Write("nginx.conf", config);
  process_ = std::make_unique<Process>(std::vector<std::string>{"/usr/sbin/nginx", "-c", config_file, "-p", prefix},
                                       prefix + "/stderr.log", /*pipe_stdout=*/false);
  url_ = std::string(http2 ? "https" : "http") + "://127.0.0.1:" + std::to_string(port) + "/v1";
  bool listening = Eventually([port] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(fd);
    return connected;
  });
  if (!listening) ADD_FAILURE() << "nginx did not start: " << ReadFile(prefix + "/error.log");
}

NginxFront::~NginxFront() { process_->Stop(SIGQUIT); }

std::vector<std::vector<std::string>> NginxFront::Log() const {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(ReadFile(log_));
  std::string connection, protocol;
  while (in >> connection >> protocol) lines.push_back({connection, protocol});
  return lines;
}

std::set<std::string> NginxFront::Connections() const {
  std::set<std::string> out;
  for (const auto& line : Log()) out.insert(line[0]);
  return out;
}

std::set<std::string> NginxFront::Protocols() const {
  std::set<std::string> out;
  for (const auto& line : Log()) out.insert(line[1]);
  return out;
}

nlohmann::json FakeStorm::Control(const std::string& verb, const std::string& path, const std::string& body,
                                  long* status) const {
  CURL* curl = curl_easy_init();
  std::string answer;
  std::string url = control_url_ + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  if (verb == "POST") curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  else if (verb != "GET") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, verb.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  CURLcode code = curl_easy_perform(curl);
  if (status) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK) Die("control request " + path + " failed: " + curl_easy_strerror(code));
  return nlohmann::json::parse(answer);
}

HttpResult FakeStorm::Api(const std::string& path, const std::string& body, const std::string& user,
                          const std::string& secret, const std::string& passcode) const {
  HttpResult result;
  CURL* curl = curl_easy_init();
  std::string url = url_ + "/" + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file_.c_str());
  curl_easy_setopt(curl, CURLOPT_USERNAME, user.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, secret.c_str());
  curl_slist* headers = nullptr;
  std::string passcode_header = "X-Two-Factor-Passcode: " + passcode;
  if (!passcode.empty()) headers = curl_slist_append(headers, passcode_header.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, +[](char* data, size_t size, size_t count, void* out) {
    std::string line(data, size * count);
    if (line.rfind("Date: ", 0) == 0 || line.rfind("date: ", 0) == 0) {
      *static_cast<std::string*>(out) = line.substr(6, line.find_last_not_of("\r\n") - 5);
    }
    return size * count;
  });
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.date_header);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  CURLcode code = curl_easy_perform(curl);
  if (code == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  else result.transport_error = curl_easy_strerror(code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return result;
}

nlohmann::json FakeStorm::Counters() const { return Control("GET", "/counters"); }
nlohmann::json FakeStorm::Tokens() const { return Control("GET", "/tokens"); }
std::vector<std::string> FakeStorm::IssuedTokens() const {
  return Control("GET", "/tokens/issued").get<std::vector<std::string>>();
}
int FakeStorm::Revoke(const std::string& token) {
  // Tokens are base64: '+' and '/' must be escaped in a query string.
  char* escaped = curl_easy_escape(nullptr, token.c_str(), static_cast<int>(token.size()));
  std::string query = escaped;
  curl_free(escaped);
  return Control("POST", "/revoke?token=" + query)["revoked"].get<int>();
}

long long FakeStorm::Count(const std::string& method, const std::string& kind) const {
  nlohmann::json counters = Counters();
  auto& methods = counters["methods"];
  // The emulator lists every method it has with every kind: anything else is
  // a typo in the test, which must not read as "0 calls".
  if (!methods.contains(method)) Die("the emulator counts no method '" + method + "' (lower case, as it is listed)");
  if (!methods[method].contains(kind)) Die("the emulator counts no kind '" + kind + "' of call");
  return methods[method][kind].get<long long>();
}

void FakeStorm::Arm(const std::string& fault) const {
  long status = 0;
  nlohmann::json answer = Control("POST", "/faults", fault, &status);
  if (status != 200) Die("the emulator refused the fault " + fault + ": " + answer.dump());
}

Broker::Broker(const TempDir& dir, const YAML::Node& config, const std::map<std::string, std::string>& env,
               const std::vector<std::string>& prefix) {
  config_path_ = dir.Write("stormbroker.yaml", ToYaml(config));
  log_path_ = dir.path() + "/stormbrokerd.log";
  socket_path_ = config["listen"]["socket"].as<std::string>();
  std::vector<std::string> argv = prefix;
  argv.insert(argv.end(), {Binary("stormbrokerd"), "--config", config_path_, "--verbose"});
  process_ = std::make_unique<Process>(argv, log_path_, false, env);
}

Broker::~Broker() { process_->Stop(SIGTERM); }

std::string Broker::Log() const {
  std::ifstream in(log_path_);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool Broker::WaitForState(const std::string& state, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Connect only once the socket exists: a gRPC channel that failed to connect
  // waits out a reconnect backoff (a second or more) before it tries again.
  if (!Eventually([&] { return !process_->Running() || std::filesystem::exists(socket_path_); }, timeout)) {
    return false;
  }
  auto client = Connect();
  bool reached = false;
  Eventually(
      [&] {
        if (!process_->Running()) return true;  // gave up: it will never get there
        auto accounts = client->ListAccounts();
        if (!accounts.ok() || accounts.value().empty()) return false;
        reached = true;
        for (const auto& a : accounts.value()) reached = reached && a.state == state;
        return reached;
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
  return reached;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

YAML::Node BasicConfig(const std::string& socket, const FakeStorm& storm, const std::string& password_file) {
  return BasicConfig(socket, storm.url(), storm.ca_file(), password_file);
}

YAML::Node BasicConfig(const std::string& socket, const std::string& url, const std::string& ca_file,
                       const std::string& password_file) {
  YAML::Node config;
  config["listen"]["socket"] = socket;
  config["listen"]["mode"] = "0666";
  config["upstream"]["url"] = url;
  config["upstream"]["ca_file"] = ca_file;
  config["upstream"]["timeout"] = "10s";
  config["accounts"]["prod"]["username"] = "deploy-bot";
  config["accounts"]["prod"]["password_file"] = password_file;
  config["accounts"]["prod"]["token_timeout"] = "1h";
  config["policy"] = YAML::Load(R"([{users: [root], accounts: ["*"], methods: ["*"], admin: true}])");
  return config;
}

std::string ToYaml(const YAML::Node& config) {
  YAML::Emitter out;
  out << config;
  return std::string(out.c_str()) + "\n";
}

namespace {
void SetAt(YAML::Node node, const std::vector<std::string>& path, size_t depth, const std::string& value) {
  if (depth + 1 == path.size()) node[path[depth]] = value;
  else SetAt(node[path[depth]], path, depth + 1, value);  // a handle on the child, not a copy
}
}  // namespace

YAML::Node With(YAML::Node config, const std::vector<std::string>& path, const std::string& value) {
  SetAt(config, path, 0, value);
  return config;
}

void BrokerTest::StartStorm(const std::string& password, const std::string& totp_secret,
                            std::vector<std::string> flags) {
  storm_ = std::make_unique<FakeStorm>(dir_, std::vector<StormUser>{{"deploy-bot", password, totp_secret}},
                                       std::move(flags));
  password_file_ = dir_.Write("prod.password", password + "\n", 0600);
}

YAML::Node BrokerTest::Config() const { return BasicConfig(socket_, *storm_, password_file_); }

void BrokerTest::StartBroker(const YAML::Node& config, const std::string& wait_for) {
  broker_ = std::make_unique<Broker>(dir_, config);
  ASSERT_TRUE(broker_->WaitForState(wait_for)) << broker_->Log();
}

RunResult BrokerTest::Ctl(std::vector<std::string> args, const std::string& input) const {
  args.insert(args.begin(), {Binary("stormctl"), "--socket", socket_});
  return RunCommand(args, input);
}

std::vector<std::string> Hammer(const Broker& broker, int clients, std::chrono::milliseconds duration,
                                std::atomic<int>* ok, const std::function<void()>& meanwhile) {
  std::mutex mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  auto until = std::chrono::steady_clock::now() + duration;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      auto client = broker.Connect();
      while (std::chrono::steady_clock::now() < until) {
        auto outcome = client->Call("prod", "Utilities/Info/ping", {});
        std::lock_guard<std::mutex> lock(mutex);
        if (!outcome.ok()) failures.push_back(outcome.error().message);
        else if (outcome->api_error) failures.push_back(outcome->api_error->error_class);
        else ++*ok;
      }
    });
  }
  meanwhile();
  for (auto& t : threads) t.join();
  return failures;
}

}  // namespace harness
