// stormbrokerd: holds Storm API credentials and proxies calls for local
// processes over gRPC on a Unix socket.

#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <cstring>
#include <string>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "access/peer_registry.h"
#include "access/policy.h"
#include "config/config.h"
#include "observe/audit_log.h"
#include "observe/logging.h"
#include "service/broker_service.h"
#include "service/self_test.h"
#include "service/unix_listener.h"
#include "tokens/account_session.h"
#include "tokens/scheduler.h"
#include "tokens/token_store.h"
#include "upstream/http_engine.h"
#include "upstream/storm_client.h"

namespace stormbroker {
namespace {

constexpr const char* kUsage = R"(usage: stormbrokerd --config FILE [--check-config] [--verbose]

Holds Storm API credentials and proxies API calls for local processes over
gRPC on a Unix socket.

  --config FILE    the YAML configuration (default /etc/stormbroker/stormbroker.yaml)
  --check-config   validate the configuration and exit: 0 when valid, 1 with
                   FILE:LINE: what is wrong
  --verbose        log every call, not only failures
  --version        print the version and exit
  --help           this text
)";

struct Options {
  std::string config_path = "/etc/stormbroker/stormbroker.yaml";
  bool check_only = false;
  bool verbose = false;
};

// Stops every session, expiring tokens upstream where the account says so,
// and waits for that at most `bound`.
void StopSessions(AccountSessions& sessions, std::chrono::seconds bound) {
  // Shared: a session may report after we stopped waiting.
  struct Countdown {
    std::mutex mutex;
    std::condition_variable all_done;
    size_t pending;
  };
  auto countdown = std::make_shared<Countdown>();
  countdown->pending = sessions.size();
  for (auto& [name, session] : sessions) {
    session->Stop(session->expire_on_shutdown(), [countdown] {
      std::lock_guard<std::mutex> lock(countdown->mutex);
      if (--countdown->pending == 0) countdown->all_done.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(countdown->mutex);
  if (!countdown->all_done.wait_for(lock, bound, [&] { return countdown->pending == 0; })) {
    spdlog::warn("gave up waiting for tokens to be expired upstream");
  }
}

// SIGHUP: the policy (and the audit file, for log rotation) change at once,
// without dropping a connection or a token. A broken file changes nothing.
// Accounts, listen and upstream settings hold tokens and sockets, so changes
// to them wait for a restart, and the log says so.
void Reload(const Config& running, PolicyHolder& policy, AuditLog& audit) {
  auto fresh = LoadConfig(running.path);
  if (!fresh.ok()) {
    spdlog::error("reload rejected, keeping the running configuration: {}", fresh.status().message());
    return;
  }
  policy.Set(std::make_shared<const Policy>(fresh->policy));
  if (Status reopened = audit.Reopen(); !reopened.ok()) spdlog::error("{}", reopened.message());
  bool accounts_changed = fresh->accounts.size() != running.accounts.size();
  for (const auto& [name, account] : fresh->accounts) {
    auto old = running.accounts.find(name);
    accounts_changed = accounts_changed || old == running.accounts.end() || old->second.username != account.username ||
                       !(old->second.password == account.password) || old->second.two_factor != account.two_factor;
  }
  if (accounts_changed || fresh->listen.socket_path != running.listen.socket_path ||
      fresh->upstream.url != running.upstream.url || fresh->state_dir != running.state_dir) {
    spdlog::warn("reload: changes to accounts, listen, upstream or state_dir take effect at the next restart");
  }
  spdlog::info("reloaded the policy from {} ({} rules)", running.path, fresh->policy.size());
}

int Serve(Config config) {
  HttpEngine engine({config.upstream.ca_file});
  if (Status started = engine.Start(); !started.ok()) {
    spdlog::critical("{}", started.message());
    return 1;
  }
  ThreadScheduler scheduler;
  StormClient upstream(engine, config.upstream);
  std::unique_ptr<FileTokenStore> store;
  if (!config.state_dir.empty()) {
    auto opened = FileTokenStore::Open(config.state_dir);
    if (!opened.ok()) {
      spdlog::critical("{}", opened.status().message());
      return 1;
    }
    store = std::move(opened).value();
  }
  PolicyHolder policy(std::make_shared<const Policy>(config.policy));
  AccountWatchHub watches(policy);
  std::unique_ptr<AuditSink> audit_sink = MakeStderrAuditSink();
  if (!config.audit.file.empty()) {
    auto file = MakeFileAuditSink(config.audit.file);
    if (!file.ok()) {
      spdlog::critical("{}", file.status().message());
      return 1;
    }
    audit_sink = std::move(file).value();
  }
  AuditLog audit(std::move(audit_sink), config.audit.queue);
  AccountSessions sessions;
  for (const auto& [name, account] : config.accounts) {
    sessions.emplace(name, std::make_shared<AccountSession>(account, upstream, scheduler, store.get(), &watches));
  }
  PeerRegistry peers;
  BrokerService service(peers, policy, sessions, watches, audit);

  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    spdlog::critical("gRPC server failed to start");
    return 1;
  }
  if (Status self_test = CheckPeerIdentification(server.get(), &peers); !self_test.ok()) {
    spdlog::critical("{}", self_test.message());
    return 1;
  }
  auto listener = UnixListener::Open(config.listen);
  if (!listener.ok()) {
    spdlog::critical("{}", listener.status().message());
    return 1;
  }
  (*listener)->Start(server.get(), &peers);
  for (auto& [name, session] : sessions) session->Start();
  spdlog::info("serving {} account(s) on {}", sessions.size(), config.listen.socket_path);

  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  for (;;) {
    int received = 0;
    sigwait(&signals, &received);
    if (received == SIGHUP) {
      Reload(config, policy, audit);
      continue;
    }
    spdlog::info("{}: shutting down", strsignal(received));
    break;
  }
  // Stop taking connections, end watch streams, let calls in flight finish
  // (bounded), then expire the tokens that should not outlive the daemon.
  (*listener)->Stop();
  watches.CloseAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  StopSessions(sessions, std::chrono::seconds(3));
  scheduler.Stop();
  engine.Stop();
  server->Wait();
  return 0;
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      options.config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      options.check_only = true;
    } else if (arg == "--verbose" || arg == "-v") {
      options.verbose = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("stormbrokerd %s\n", STORMBROKER_VERSION);
      return 0;
    } else {
      std::fprintf(stderr, "stormbrokerd: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }

  // Before any thread starts, so that every thread inherits the mask and the
  // main thread alone takes these signals through sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto config = LoadConfig(options.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().message().c_str());
    return 1;
  }
  if (options.check_only) {
    std::printf("%s: OK (%zu account(s), %zu policy rule(s))\n", options.config_path.c_str(),
                config->accounts.size(), config->policy.size());
    return 0;
  }
  SetUpLogging(options.verbose);
  return Serve(std::move(config).value());
}

}  // namespace
}  // namespace stormbroker

int main(int argc, char** argv) { return stormbroker::Main(argc, argv); }
