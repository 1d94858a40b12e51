// The trust boundary, tried as a hostile local user on a shared build server
// would: every test is an attack on the real daemon over its real socket, and
// the refusal the broker owes it. Callers run as other uids (nobody, and a
// user made for the test whose group membership matters).
//
// To watch these fail on an older broker, point the harness at its programs
// with STORMBROKER_TEST_DAEMON=OLD/build/daemon/stormbrokerd and
// STORMBROKER_TEST_STORMCTL=OLD/build/client/stormctl.

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "hostile_fixture.h"

namespace {

using namespace hostile;

// 1. Reserved methods: a broad rule never reaches the broker's own credentials.
TEST_F(HostileCallerTest, CredentialMethodsThroughCallAreRefusedAndTheTokenIsUntouched) {
  Start();
  std::vector<std::string> tokens_before = LiveTokens();
  ASSERT_FALSE(tokens_before.empty());
  const std::vector<std::vector<std::string>> attacks = {
      {"call", "--account", "prod", "ACCOUNT/auth/TOKEN"},
      {"call", "--account", "prod", "account/auth/expireToken.json"},
      {"call", "--account", "prod", "Account/Auth/token", "timeout=1"},
      {"call", "--account", "prod", "account/auth/expireToken"},
  };
  for (const auto& attack : attacks) {
    for (std::optional<uid_t> as : {std::optional<uid_t>(kNobody), std::optional<uid_t>()}) {
      auto result = Ctl(attack, as);
      EXPECT_EQ(result.exit_code, 5) << attack[3] << " as " << (as ? "nobody" : "root") << ": " << result.out;
      EXPECT_NE(result.err.find("GetToken"), std::string::npos) << result.err;
      EXPECT_EQ(result.out.find(tokens_before.front()), std::string::npos) << "the token leaked";
    }
  }
  EXPECT_EQ(LiveTokens(), tokens_before) << "the token upstream changed";
  EXPECT_EQ(storm_->Count("account/auth/expiretoken", "token"), 0);
  EXPECT_EQ(storm_->Count("account/auth/token", "token"), 0) << "a credential method went upstream";
  int denied = CountAudited([](const nlohmann::json& r) {
    return r.value("rpc", "") == "Call" && r.value("decision", "") == "deny";
  }, 8);
  EXPECT_EQ(denied, 8) << "every refusal is audited";
  EXPECT_EQ(Ctl({"call", "--account", "prod", "Utilities/Info/ping"}, kNobody).exit_code, 0);
}

// 2. One uid's connections cannot take every place.
TEST_F(HostileCallerTest, FiveThousandConnectionsOfOneUidLeaveOtherCallersServed) {
  Start(With({"limits", "first_request_timeout"}, "4s"));
  HostileProcess flooder(dir_, kNobody, {"flood", socket_, "5000"});
  long connected = flooder.Next();
  // Once the broker has taken in the uid's share and closed the rest (until
  // then the kernel's listen queue may be full, and a connect anyone makes
  // fails with EAGAIN: no server can prevent that), another uid (root) is
  // served as usual while the flooder holds its 1024 connections.
  long closed_early = flooder.Next();
  auto client = broker_->Connect();
  int ok = 0;
  std::string first_failure;
  for (int i = 0; i < 100; ++i) {
    auto outcome = client->Call("prod", "Utilities/Info/ping", {});
    if (outcome.ok() && !outcome->api_error) ++ok;
    else if (first_failure.empty()) first_failure = outcome.ok() ? "api error" : outcome.error().message;
  }
  long closed_late = flooder.Next();

  EXPECT_EQ(ok, 100) << first_failure;
  EXPECT_EQ(connected, 5000);
  // limits.connections_per_uid (1024) were taken in; the rest were closed at once.
  EXPECT_GE(closed_early, 5000 - 1024) << "connections beyond the uid's share must be refused";
  EXPECT_LE(closed_early, 5000 - 1000);
  EXPECT_EQ(closed_late, 5000) << "idle connections that never sent a request are closed by the deadline";
  EXPECT_TRUE(broker_->process().Running());
  broker_->process().Stop(SIGTERM);  // writes the suppressed counts still pending
  long refusals = 0, suppressed = 0;
  for (const auto& r : Audit()) {
    if (r.value("rpc", "") == "connect" && r.value("uid", -1) == static_cast<long>(kNobody)) {
      EXPECT_EQ(r["decision"], "limit");
      EXPECT_NE(r["detail"].get<std::string>().find("connections_per_uid"), std::string::npos) << r.dump();
      ++refusals;
      suppressed += r.value("refusals_suppressed", 0);
    }
    if (r.value("event", "") == "audit_refusals_suppressed" && r.value("uid", -1) == static_cast<long>(kNobody)) {
      suppressed += r["count"].get<long>();
    }
  }
  EXPECT_GT(refusals, 0);
  EXPECT_LE(refusals, 80) << "refusals are written at a bounded rate per uid";
  EXPECT_EQ(refusals + suppressed, 5000 - 1024) << "and the rest are counted";
}

// 2. A half-sent request holds memory: the first-request deadline ends it.
TEST_F(HostileCallerTest, AThousandHalfSentRequestsAreReleasedByTheDeadline) {
  Start(With({"limits", "first_request_timeout"}, "2s"));
  struct rlimit files {};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  strncpy(address.sun_path, socket_.c_str(), sizeof address.sun_path - 1);
  // The HTTP/2 preface, an empty SETTINGS frame, then a HEADERS frame that
  // announces 16 KiB and sends 100 bytes of it.
  std::string half = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\x04\0\0\0\0\0", 9) +
                     std::string("\0\x40\0\x01\x04\0\0\0\x01", 9) + std::string(100, 'h');
  std::vector<int> fds;
  for (int i = 0; i < 1000; ++i) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << strerror(errno);
    ASSERT_EQ(send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
    fds.push_back(fd);
  }
  // Calls on complete requests go on meanwhile.
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/ping", {}).ok());
  int count = 0;
  harness::Eventually([&] { return (count = Ended(fds)) == 1000; }, 6s);
  for (int fd : fds) close(fd);
  EXPECT_EQ(count, 1000) << "connections with a half-sent request must be ended by the first-request deadline";
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/ping", {}).ok());
}

// 2. Messages larger than limits.max_request_size are not read.
TEST_F(HostileCallerTest, OversizedRequestsAreRefusedBeforeTheyAreRead) {
  Start();
  auto client = broker_->Connect();
  for (size_t size : {size_t{2} << 20, size_t{4} << 20}) {
    auto outcome = client->Call("prod", "Utilities/Info/ping", {{"blob", std::string(size, 'a')}});
    ASSERT_FALSE(outcome.ok()) << size;
    EXPECT_EQ(outcome.error().code, stormbroker::client::ErrorCode::kResourceExhausted) << outcome.error().message;
  }
  EXPECT_EQ(storm_->Count("utilities/info/ping", "token"), 0);
  EXPECT_TRUE(client->Call("prod", "Utilities/Info/ping", {}).ok());
}

// 2. Calls in flight are bounded per uid; other uids are not held up.
TEST_F(HostileCallerTest, CallsBeyondTheUidsShareAreRefusedAndAudited) {
  Start(With({"limits", "calls_per_uid"}, "4"));
  storm_->Arm(R"({"kind":"delay","delay_ms":1500,"method":"utilities/info/version","count":100})");
  HostileProcess greedy(dir_, kNobody, {"calls", socket_, "prod", "Utilities/Info/version", "10"});
  // Its share is at the API, the rest refused.
  ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("delay", 0) >= 4; }));
  auto root_call = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  EXPECT_TRUE(root_call.ok()) << root_call.error().message;
  long ok = greedy.Next(), exhausted = greedy.Next();
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(exhausted, 6);
  int audited = CountAudited([](const nlohmann::json& r) {
    return r.value("uid", -1) == static_cast<long>(kNobody) && r.value("decision", "") == "limit";
  }, 6);
  EXPECT_EQ(audited, 6);
}

// 3. Refusals cannot flood the trail, nor can a caller inflate its lines;
// the records of allowed token exports are kept whatever happens.
TEST_F(HostileCallerTest, TheAuditTrailCannotBeFloodedOrInflated) {
  Start();
  HostileProcess flooder(dir_, kNobody, {"denied", socket_, "staging", "500"});
  EXPECT_EQ(flooder.Next(), 501);
  auto token = broker_->Connect()->GetToken("prod");
  ASSERT_TRUE(token.ok()) << token.error().message;
  broker_->process().Stop(SIGTERM);  // writes what is queued, and the suppressed counts
  long written = 0, suppressed = 0;
  size_t longest = 0;
  bool export_recorded = false;
  std::ifstream in(audit_);
  for (std::string line; std::getline(in, line);) {
    auto r = nlohmann::json::parse(line);
    if (r.value("uid", -1) == static_cast<long>(kNobody) && r.value("rpc", "") == "Call") {
      ++written;
      suppressed += r.value("refusals_suppressed", 0);
      longest = std::max(longest, line.size());
      if (r.contains("params")) {
        EXPECT_LE(r["params"].size(), 33u) << "parameter names are capped";
      }
    }
    if (r.value("event", "") == "audit_refusals_suppressed" && r.value("uid", -1) == static_cast<long>(kNobody)) {
      suppressed += r["count"].get<long>();
    }
    if (r.value("rpc", "") == "GetToken" && r.value("decision", "") == "allow") export_recorded = true;
  }
  EXPECT_LE(written, 80) << "refusals are written at a bounded rate per uid (burst 50, 10 a second)";
  EXPECT_EQ(written + suppressed, 501) << "every refusal is written or counted";
  EXPECT_LT(longest, 16u << 10) << "a caller inflated its audit line";
  EXPECT_TRUE(export_recorded);
}

// 4. The state directory and its files are not trusted blindly.
TEST_F(HostileCallerTest, UnsafeFilesAndPlainHttpAreRefusedByCheckConfig) {
  auto check = [&](const YAML::Node& config) {
    std::string path = dir_.Write("check.yaml", harness::ToYaml(config));
    // A FIFO must not hang the check: bounded by timeout(1).
    return RunCommand({"/usr/bin/timeout", "-k", "2", "10", Binary("stormbrokerd"), "--config", path, "--check-config"});
  };
  auto with_password_file = [&](const std::string& path) { return With({"accounts", "prod", "password_file"}, path); };

  std::string state = dir_.path() + "/state";
  std::filesystem::create_directory(state);
  chmod(state.c_str(), 0777);
  auto open_state = check(With({"state_dir"}, state));
  EXPECT_EQ(open_state.exit_code, 1) << open_state.out;
  EXPECT_NE(open_state.err.find("chmod 700 " + state), std::string::npos) << open_state.err;

  std::string readable = dir_.Write("readable.pw", kProdPassword, 0644);
  auto open_password = check(with_password_file(readable));
  EXPECT_EQ(open_password.exit_code, 1) << open_password.out;
  EXPECT_NE(open_password.err.find("chmod go-w,o-r " + readable), std::string::npos) << open_password.err;
  EXPECT_NE(open_password.err.find("check.yaml:"), std::string::npos) << "FILE:LINE";

  std::string fifo = dir_.path() + "/fifo.pw";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto from_fifo = check(with_password_file(fifo));
  EXPECT_EQ(from_fifo.exit_code, 1) << "a FIFO as password file: " << from_fifo.err;
  EXPECT_NE(from_fifo.err.find("not a regular file"), std::string::npos) << from_fifo.err;

  std::string group_readable = dir_.Write("group.pw", kProdPassword, 0640);
  auto warned = check(with_password_file(group_readable));
  EXPECT_EQ(warned.exit_code, 0) << warned.err;
  EXPECT_NE(warned.err.find("warning: "), std::string::npos) << "group-readable is a warning";

  auto plain = check(With({"upstream", "url"}, "http://storm.example.com/v1"));
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_NE(plain.err.find("clear text"), std::string::npos) << plain.err;
  EXPECT_EQ(check(With({"upstream", "url"}, "http://127.0.0.1:9/v1")).exit_code, 0) << "loopback is fine";
}

// 4. A token file planted as a link (to a copy of a live token) is not used.
TEST_F(HostileCallerTest, ALinkedStateFileIsNotFollowed) {
  std::string state = dir_.path() + "/state";
  Start(With({"state_dir"}, state));
  broker_->process().Stop(SIGKILL);  // the token file stays
  std::string saved = dir_.path() + "/saved.token";
  std::filesystem::rename(state + "/prod.token", saved);
  std::filesystem::create_symlink(saved, state + "/prod.token");
  std::filesystem::create_hard_link(state + "/staging.token", dir_.path() + "/staging.link");
  long logins_before = storm_->Count("account/auth/token", "password");
  Start(With({"state_dir"}, state));
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), logins_before + 2)
      << "a linked token file was used instead of a new login";
  EXPECT_NE(broker_->Log().find("not using the state file"), std::string::npos) << broker_->Log();
}

// 5. A forged authorization error costs the broker neither its token nor a login.
TEST_F(HostileCallerTest, AForgedAuthorizationErrorDoesNotCauseASecondLogin) {
  Start(With({"shutdown_timeout"}, "1s"));  // the last call waits out relogin_interval: do not wait for it at the end
  long logins = storm_->Count("account/auth/token", "password");
  storm_->Arm(R"({"kind":"reject_token","method":"utilities/info/ping","count":1})");
  auto outcome = broker_->Connect()->Call("prod", "Utilities/Info/ping", {});
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_FALSE(outcome->api_error) << "the call is retried once with the token the keep-alive confirmed";
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), logins) << "a forged 401 caused a password login";
  EXPECT_EQ(storm_->Count("account/auth/token", "token"), 1) << "one keep-alive confirmed the token";
  // A token that really died: one re-login at once, the next not within relogin_interval.
  storm_->Revoke();
  EXPECT_TRUE(broker_->Connect()->Call("prod", "Utilities/Info/ping", {}).ok());
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), logins + 1);
  storm_->Revoke();
  auto held = broker_->Connect()->Call("prod", "Utilities/Info/ping", {}, 2s);
  EXPECT_FALSE(held.ok() && !held->api_error) << "a second re-login came at once";
  EXPECT_EQ(storm_->Count("account/auth/token", "password"), logins + 1) << "login storm";
}

// 6. Groups are the calling process's own: a dropped group is dropped.
TEST_F(HostileCallerTest, GroupsAreTheCallersRealGroups) {
  Start();
  uid_t mallory = getpwnam(kMallory)->pw_uid;
  gid_t own_group = getpwnam(kMallory)->pw_gid;
  auto with_groups = Ctl({"call", "--account", "prod", "Utilities/Info/ping"}, mallory);
  EXPECT_EQ(with_groups.exit_code, 0) << with_groups.err;
  auto dropped = RunCommand({"/usr/bin/setpriv", "--reuid", std::to_string(mallory), "--regid",
                             std::to_string(own_group), "--clear-groups", "--", Binary("stormctl"), "--socket", socket_,
                             "call", "--account", "prod", "Utilities/Info/ping"});
  EXPECT_EQ(dropped.exit_code, 5) << "a process without the group was let in: " << dropped.out << dropped.err;
}

// 7. A passcode is digits: nothing for an HTTP header to carry.
TEST_F(HostileCallerTest, APasscodeWithLineBreaksIsRefusedBeforeItTravels) {
  Start();
  auto client = broker_->Connect();
  for (const char* bad : {"123456\r\nX-Evil: 1", "123456\n", "12345a", "123"}) {
    auto login = client->Login("tfa", bad);
    ASSERT_FALSE(login.ok()) << bad;
    EXPECT_EQ(login.error().code, stormbroker::client::ErrorCode::kInvalidArgument) << login.error().message;
  }
  auto counters = storm_->Counters();
  EXPECT_EQ(counters["auth"]["password+passcode"], 0) << counters.dump();
  EXPECT_EQ(counters["auth"]["rejected"], 0) << "a malformed passcode went upstream";
}

// 7. The upstream's answers are bounded in size and depth.
TEST_F(HostileCallerTest, AnUpstreamAnswerTooLargeOrTooDeepIsRefused) {
  Start(With({"upstream", "max_response_size"}, "64KiB"));
  auto client = broker_->Connect();
  auto big = client->Call("prod", "Storm/Server/details", {{"uniq_id", "BIG01"}});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, stormbroker::client::ErrorCode::kUnavailable);
  EXPECT_NE(big.error().message.find("max_response_size"), std::string::npos) << big.error().message;
  auto deep = client->Call("prod", "Storm/Server/details", {{"uniq_id", "DEEP01"}});
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("nested deeper"), std::string::npos) << deep.error().message;
  EXPECT_TRUE(client->Call("prod", "Utilities/Info/ping", {}).ok()) << "the broker serves on";
}

// 8. Health says nothing of accounts the caller may not use.
TEST_F(HostileCallerTest, HealthOfAnotherAccountIsNotFound) {
  Start();
  auto probe = [&](const std::string& service, std::optional<uid_t> as) {
    return RunCommand({"/usr/bin/python3", Binary("grpc_probe"), "health", socket_, service}, "", as,
                      {{"PYTHONPATH", Binary("python_stubs")}})
        .out;
  };
  EXPECT_EQ(probe("account:prod", kNobody), "SERVING\n");
  EXPECT_EQ(probe("account:staging", kNobody), "NOT_FOUND\n");
  EXPECT_EQ(probe("account:tfa", kNobody), "NOT_FOUND\n");
  EXPECT_EQ(probe("", kNobody), "SERVING\n");
  EXPECT_EQ(probe("account:staging", std::nullopt), "SERVING\n");
}

// 9. stormctl shows what an upstream chose as text, not as terminal commands.
TEST_F(HostileCallerTest, StormctlShowsControlCharactersOnATerminalAsText) {
  Start();
  for (const char* output : {"yaml", "table"}) {
    // script(1) gives stormctl a terminal, as a person's shell would.
    std::string command = Binary("stormctl") + " --socket " + socket_ +
                          " call --account prod Storm/Server/details uniq_id=EVIL01 --output " + output;
    auto shown = RunCommand({"/usr/bin/script", "-qec", command, "/dev/null"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_EQ(shown.out.find('\x1b'), std::string::npos) << output << ": an escape sequence reached the terminal";
    EXPECT_EQ(shown.out.find('\x07'), std::string::npos) << output;
    EXPECT_NE(shown.out.find("pwned"), std::string::npos) << output << ": " << shown.out;
  }
  // Piped, the bytes arrive as the API sent them (JSON escapes them itself).
  auto piped = Ctl({"call", "--account", "prod", "Storm/Server/details", "uniq_id=EVIL01"});
  EXPECT_NE(piped.out.find("\\u001b]0;pwned"), std::string::npos) << piped.out;
}

// 9. A process that took over the socket's path gets no passcode: not in a
// shared directory, not through a bare relative name, not under a directory
// others can write, not from a socket of another ordinary user.
TEST_F(HostileCallerTest, StormctlSendsNoPasscodeToASquatter) {
  // nobody's listener keeps whatever a client sends.
  const char* listener = R"(
import socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(16)
print("ready", flush=True)
data = b""
while True:
    c, _ = s.accept()
    c.settimeout(1.0)
    # An HTTP/2 server's first words (SETTINGS, and an ACK of the client's):
    # enough for a gRPC client to send its request.
    c.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
            open(out, "wb").write(data)
    except OSError:
        pass
    c.close()
)";
  // A directory made with `mode` (then `final_mode`, once nobody's socket is in it).
  auto directory = [&](const std::string& name, mode_t mode, uid_t owner = 0) {
    std::string path = dir_.path() + "/" + name;
    std::filesystem::create_directories(path);
    chmod(path.c_str(), mode);
    EXPECT_EQ(chown(path.c_str(), owner, owner), 0);
    return path;
  };
  struct Squat {
    std::string cwd, socket_arg, squat_path;
    std::optional<std::pair<std::string, mode_t>> then_chmod;
    const char* what;
  };
  std::string sticky = directory("open", 01777);
  std::string shared = directory("shared", 0777);
  std::string writable_above = directory("loose", 0777);
  std::string nobodys = directory("loose/nobodys", 0755, kNobody);
  std::string closed = directory("closed", 0777);
  const std::vector<Squat> squats = {
      {"/", sticky + "/broker.sock", sticky + "/broker.sock", std::nullopt, "in a sticky shared directory"},
      {shared, "evil.sock", shared + "/evil.sock", std::nullopt, "a bare name in a shared directory"},
      {"/", nobodys + "/broker.sock", nobodys + "/broker.sock", std::nullopt, "under a directory others can write"},
      {"/", closed + "/broker.sock", closed + "/broker.sock", std::make_pair(closed, mode_t{0755}),
       "another ordinary user's socket"},
  };
  int n = 0;
  for (const Squat& squat : squats) {
    std::string heard = dir_.path() + "/heard-" + std::to_string(n++);
    harness::Process squatter({"/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
                               "/usr/bin/python3", "-c", listener, squat.squat_path, heard},
                              heard + ".log", /*pipe_stdout=*/true);
    ASSERT_EQ(squatter.ReadLine(10s), "ready") << squat.what;
    if (squat.then_chmod) chmod(squat.then_chmod->first.c_str(), squat.then_chmod->second);
    std::string command = "cd " + squat.cwd + " && exec " + Binary("stormctl") + " --socket " + squat.socket_arg +
                          " login tfa --passcode-stdin";
    auto login = RunCommand({"/bin/sh", "-c", command}, "246813\n");
    EXPECT_NE(login.exit_code, 0) << squat.what;
    EXPECT_NE(login.err.find("not sending the passcode"), std::string::npos) << squat.what << ": " << login.err;
    EXPECT_EQ(harness::ReadFile(heard).find("246813"), std::string::npos)
        << squat.what << ": the squatter received the passcode";
    // Nor the params of a call (a new server's password), nor a token request.
    command = "cd " + squat.cwd + " && exec " + Binary("stormctl") + " --socket " + squat.socket_arg +
              " call --account prod Storm/Server/create password=s3cret-root-pw";
    auto call = RunCommand({"/bin/sh", "-c", command});
    EXPECT_NE(call.err.find("not sending the params"), std::string::npos) << squat.what << ": " << call.err;
    EXPECT_EQ(harness::ReadFile(heard).find("s3cret-root-pw"), std::string::npos) << squat.what;
  }
}

// 10. Once SIGTERM arrived, nothing new starts: not even a token export.
TEST_F(HostileCallerTest, DrainingRefusesLoginLogoutAndGetToken) {
  Start(With({"shutdown_timeout"}, "5s"));
  auto client = broker_->Connect();
  ASSERT_TRUE(client->GetToken("prod").ok());  // the connection is up
  storm_->Arm(R"({"kind":"delay","delay_ms":3000,"method":"utilities/info/ping"})");
  std::thread slow([&] { client->Call("prod", "Utilities/Info/ping", {}); });
  ASSERT_TRUE(harness::Eventually([&] { return storm_->Counters()["faults"].value("delay", 0) == 1; }));
  kill(broker_->process().pid(), SIGTERM);
  // The server's GOAWAY reaches the client within this; nothing the test
  // can watch says when (the log line comes before it).
  std::this_thread::sleep_for(500ms);
  auto token = client->GetToken("prod");
  ASSERT_FALSE(token.ok()) << "a token was exported during shutdown";
  EXPECT_EQ(token.error().code, stormbroker::client::ErrorCode::kUnavailable) << token.error().message;
  auto logout = client->Logout("prod");
  EXPECT_FALSE(logout.ok());
  auto login = client->Login("prod", "");
  EXPECT_FALSE(login.ok());
  slow.join();
}

}  // namespace
