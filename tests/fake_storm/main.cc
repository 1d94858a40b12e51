// fake_storm: a real HTTP(S) server that behaves like the Storm API, for
// testing and demonstrating stormbroker. See README.md beside this file.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <httplib.h>
#include <absl/synchronization/mutex.h>

#include "emulator.h"
#include "users.h"
#include "encoding/yaml_json.h"

namespace fake_storm {
namespace {

constexpr const char* kUsage = R"(usage: fake_storm --users FILE [--cert CERT --key KEY | --plain] [options]

An emulator of the Storm API for tests, at /v1 and /bleed alike (Utilities/Info/version
says which was asked). Prints, as its first lines:
  listening on https://127.0.0.1:PORT/v1     (http:// with --plain)
  control on http://127.0.0.1:PORT

  --users FILE         YAML list of {username, password, totp_secret}
  --cert CERT --key KEY  serve HTTPS with this certificate and key (PEM)
  --plain              serve plain HTTP instead of HTTPS
  --port N             API port (default 0: pick a free one)
  --control-port N     control port (default 0: pick a free one)
  --hard-limit SECONDS a token's life from creation (default 43200)
  --max-timeout SECONDS largest inactivity timeout accepted (default 3600)
  --default-timeout SECONDS inactivity timeout when none is asked (default 900)
  --passcode-header NAME the two-factor passcode header (default X-Two-Factor-Passcode)
  --servers FILE       seed data for Storm/Server/* (JSON or YAML list of objects
                       with uniq_id); default: 60 generated servers
  --threads N          API worker threads (default 96); cpp-httplib gives each
                       open connection one, so serve N keep-alive connections
  --keep-alive SECONDS how long an idle connection stays open (default 10).
                       cpp-httplib 0.11 wakes the thread of an idle connection
                       about 90 times a second, so a client's idle connections
                       cost the emulator CPU until then
  --help               this text

Control interface (plain HTTP, loopback only):
  GET  /counters   calls per method and auth kind, as JSON
  GET  /tokens     the live tokens, as JSON
  GET  /tokens/issued  every token ever issued (live, expired or revoked)
  POST /revoke?token=T  kill token T (without token=: every token)
  GET  /faults     the faults still armed
  POST /faults     arm a fault, body e.g. {"kind":"status500","count":2}; kinds:
                   delay (with delay_ms), status500, maintenance, rate_limit,
                   reset, reject_token (optional "token"); optional "method"
                   (lower case) and "seconds" (a window instead of a count)
  DELETE /faults   disarm every fault
  GET  /clock      {"now": epoch seconds, "shift": seconds}
  POST /clock      body {"advance": SECONDS}: move the token clock forward
  POST /reset      forget counters, tokens, used passcodes, faults, clock shift
)";

struct Flags {
  std::string users, cert, key, servers;
  std::string passcode_header = "X-Two-Factor-Passcode";
  bool plain = false;
  int port = 0, control_port = 0;
  int threads = 96;  // enough for every call a test holds open with a delay fault
  int keep_alive_s = 10;
  Options options;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fake_storm: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--users") flags->users = next();
    else if (arg == "--cert") flags->cert = next();
    else if (arg == "--key") flags->key = next();
    else if (arg == "--plain") flags->plain = true;
    else if (arg == "--port") flags->port = std::stoi(next());
    else if (arg == "--control-port") flags->control_port = std::stoi(next());
    else if (arg == "--hard-limit") flags->options.hard_limit = std::chrono::seconds(std::stoll(next()));
    else if (arg == "--max-timeout") flags->options.max_timeout = std::stoll(next());
    else if (arg == "--default-timeout") flags->options.default_timeout = std::stoll(next());
    else if (arg == "--passcode-header") flags->passcode_header = next();
    else if (arg == "--servers") flags->servers = next();
    else if (arg == "--threads") flags->threads = std::stoi(next());
    else if (arg == "--keep-alive") flags->keep_alive_s = std::stoi(next());
    else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "fake_storm: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return false;
    }
  }
  if (flags->users.empty()) {
    std::fprintf(stderr, "fake_storm: --users FILE is required\n");
    return false;
  }
  if (!flags->plain && (flags->cert.empty() || flags->key.empty())) {
    std::fprintf(stderr, "fake_storm: give --cert and --key for HTTPS, or --plain for HTTP\n");
    return false;
  }
  return true;
}

// cpp-httplib listens with a backlog of 5, compiled into Debian's library: a
// burst of new connections overflows it and the kernel drops them, which
// costs the client a one-second SYN retry. A production API would not do
// that, so the listening socket gets the system's full backlog.
void WidenListenBacklog(int port) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::atoi(entry.path().filename().c_str());
    int listening = 0;
    socklen_t size = sizeof listening;
    sockaddr_in address{};
    socklen_t address_size = sizeof address;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_size) != 0) continue;
    if (address.sin_family == AF_INET && ntohs(address.sin_port) == port) listen(fd, SOMAXCONN);
  }
}

std::string HttpDate(std::chrono::system_clock::time_point when) {
  time_t t = std::chrono::system_clock::to_time_t(when);
  struct tm utc;
  gmtime_r(&t, &utc);
  char text[64];
  strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return text;
}

void ServeApi(httplib::Server& server, Emulator& emulator, const std::string& passcode_header) {
  // v1, and bleed (the API's next version, served alike here).
  server.Post(R"(/(v1|bleed)/(.*))", [&, passcode_header](const httplib::Request& req, httplib::Response& res) {
    Request request{req.matches[2], req.get_header_value("Authorization"), req.get_header_value(passcode_header.c_str()),
                    req.body, req.matches[1]};
    Reply reply = emulator.Handle(request);
    if (reply.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(reply.delay_ms));
    if (reply.reset) {
      // Promise a body, then drop the connection before sending it.
      res.set_content_provider(
          1000, "application/json", [](size_t, size_t, httplib::DataSink&) { return false; });
      return;
    }
    res.status = reply.http_status;
    // The server's clock, so a client can read `expires` without clock skew.
    res.set_header("Date", HttpDate(emulator.Now()));
    if (reply.retry_after_s) {
      res.set_header("Retry-After", reply.retry_after_as_date
                                        ? HttpDate(emulator.Now() + std::chrono::seconds(*reply.retry_after_s))
                                        : std::to_string(*reply.retry_after_s));
    }
    if (reply.encoding == "yaml") {
      res.set_content(stormbroker::RenderYaml(reply.body), "application/yaml");
    } else {
      res.set_content(reply.body.dump(), "application/json");
    }
  });
}

void Json(httplib::Response& res, const nlohmann::json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void ServeControl(httplib::Server& server, Emulator& emulator) {
  server.Get("/counters", [&](const httplib::Request&, httplib::Response& res) { Json(res, emulator.Counters()); });
  server.Get("/tokens", [&](const httplib::Request&, httplib::Response& res) { Json(res, emulator.Tokens()); });
  server.Get("/tokens/issued",
             [&](const httplib::Request&, httplib::Response& res) { Json(res, emulator.IssuedTokens()); });
  server.Post("/revoke", [&](const httplib::Request& req, httplib::Response& res) {
    Json(res, {{"revoked", emulator.Revoke(req.get_param_value("token"))}});
  });
  server.Get("/faults", [&](const httplib::Request&, httplib::Response& res) {
    Json(res, emulator.faults().Describe());
  });
  server.Post("/faults", [&](const httplib::Request& req, httplib::Response& res) {
    std::string error;
    auto fault = ParseFault(nlohmann::json::parse(req.body, nullptr, false), &error);
    if (!fault) return Json(res, {{"error", error}}, 400);
    emulator.faults().Add(*fault);
    Json(res, emulator.faults().Describe());
  });
  server.Delete("/faults", [&](const httplib::Request&, httplib::Response& res) {
    emulator.faults().Clear();
    Json(res, nlohmann::json::array());
  });
  auto clock = [&] {
    return nlohmann::json{
        {"now", std::chrono::duration_cast<std::chrono::seconds>(emulator.Now().time_since_epoch()).count()},
        {"shift", emulator.ClockShift().count()}};
  };
  server.Get("/clock", [&, clock](const httplib::Request&, httplib::Response& res) { Json(res, clock()); });
  server.Post("/clock", [&, clock](const httplib::Request& req, httplib::Response& res) {
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("advance") || !body["advance"].is_number_integer() ||
        body["advance"].get<long long>() < 0) {
      return Json(res, {{"error", "body must be {\"advance\": non-negative integer seconds}"}}, 400);
    }
    emulator.ShiftClock(std::chrono::seconds(body["advance"].get<long long>()));
    Json(res, clock());
  });
  server.Post("/reset", [&](const httplib::Request&, httplib::Response& res) {
    emulator.Reset();
    Json(res, nlohmann::json::object());
  });
}

int Main(int argc, char** argv) {
  // As in the daemon: Debian builds Abseil without NDEBUG, which leaves the
  // deadlock detector on, and every lock of the emulator's mutex then goes
  // through one global lock-order graph: a third of its CPU per call at
  // concurrency 256 (27 -> 18 us, bench/README.md), which the benchmark
  // would count against whatever calls it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  std::string error;
  auto users = LoadUsers(flags.users, &error);
  if (!users) {
    std::fprintf(stderr, "fake_storm: %s\n", error.c_str());
    return 2;
  }
  nlohmann::json servers = ServerCatalog::Generated(60);
  if (!flags.servers.empty()) {
    auto loaded = ServerCatalog::Load(flags.servers, &error);
    if (!loaded) {
      std::fprintf(stderr, "fake_storm: %s\n", error.c_str());
      return 2;
    }
    servers = std::move(*loaded);
  }
  Emulator emulator(std::move(*users), std::move(servers), flags.options);

  std::unique_ptr<httplib::Server> api;
  if (flags.plain) {
    api = std::make_unique<httplib::Server>();
  } else {
    api = std::make_unique<httplib::SSLServer>(flags.cert.c_str(), flags.key.c_str());
  }
  if (!api->is_valid()) {
    std::fprintf(stderr, "fake_storm: cannot use certificate %s and key %s\n", flags.cert.c_str(), flags.key.c_str());
    return 2;
  }
  api->new_task_queue = [threads = flags.threads] { return new httplib::ThreadPool(threads); };
  // Answer like a production server: no Nagle delay between headers and body,
  // and connections kept alive (httplib's defaults close after 5 requests).
  api->set_tcp_nodelay(true);
  api->set_keep_alive_max_count(100000);
  api->set_keep_alive_timeout(flags.keep_alive_s);
  httplib::Server control;
  ServeApi(*api, emulator, flags.passcode_header);
  ServeControl(control, emulator);

  int port = flags.port == 0 ? api->bind_to_any_port("127.0.0.1") : (api->bind_to_port("127.0.0.1", flags.port) ? flags.port : -1);
  int control_port = flags.control_port == 0 ? control.bind_to_any_port("127.0.0.1")
                                             : (control.bind_to_port("127.0.0.1", flags.control_port) ? flags.control_port : -1);
  if (port < 0 || control_port < 0) {
    std::fprintf(stderr, "fake_storm: cannot bind the requested port\n");
    return 2;
  }
  WidenListenBacklog(port);
  std::printf("listening on %s://127.0.0.1:%d/v1\ncontrol on http://127.0.0.1:%d\n",
              flags.plain ? "http" : "https", port, control_port);
  std::fflush(stdout);

  // Stop both servers on SIGTERM or SIGINT, from a thread that waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread control_thread([&] { control.listen_after_bind(); });
  std::thread stopper([&] {
    int received = 0;
    sigwait(&signals, &received);
    api->stop();
    control.stop();
  });
  stopper.detach();
  api->listen_after_bind();
  control.stop();
  control_thread.join();
  return 0;
}

}  // namespace
}  // namespace fake_storm

int main(int argc, char** argv) { return fake_storm::Main(argc, argv); }
