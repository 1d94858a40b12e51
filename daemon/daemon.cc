#include "daemon.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

#include "access/connection_table.h"
#include "access/policy.h"
#include "broker/broker_core.h"
#include "broker/broker_gauges.h"
#include "config/reload_plan.h"
#include "doors/grpc/account_watch.h"
#include "doors/grpc/grpc_door.h"
#include "doors/http/http_door.h"
#include "doors/metrics/metrics_door.h"
#include "doors/proxy/proxy_door.h"
#include "upstream/warm_keeper.h"
#include "fleet/fleet.h"
#include "fleet/fleet_gauges.h"
#include "net/passed_sockets.h"
#include "observe/account_summary.h"
#include "observe/audit_log.h"
#include "observe/last_words.h"
#include "observe/metrics_textfile.h"
#include "observe/service_manager.h"
#include "tokens/account_session.h"
#include "runtime/scheduler.h"
#include "tokens/token_store.h"
#include "upstream/http_engine.h"
#include "upstream/storm_client.h"
#include "util/ascii.h"

namespace stormbroker {
namespace {

size_t OpenDescriptors() {
  size_t count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir)) ++count;
    closedir(dir);
  }
  return count > 3 ? count - 3 : 0;  // ".", ".." and the directory's own fd
}

// How many callers' connections the descriptors allow (two each: the
// door's and the connection table's), keeping limits.reserved_descriptors
// for the rest.
size_t ConnectionsTheDescriptorsAllow(const LimitsConfig& limits) {
  struct rlimit files {};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == RLIM_INFINITY) return limits.connections;
  size_t kept = OpenDescriptors() + limits.reserved_descriptors;
  size_t spare = files.rlim_cur > kept ? files.rlim_cur - kept : 0;
  size_t allowed = std::min(limits.connections, spare / 2);
  if (allowed < limits.connections) {
    spdlog::warn("the descriptor limit ({}) allows {} connections, fewer than limits.connections ({}); raise "
                 "LimitNOFILE to allow more",
                 files.rlim_cur, allowed, limits.connections);
  }
  return std::max<size_t>(allowed, 1);
}

std::unique_ptr<AuditSink> OpenAuditSink(const AuditConfig& config, Status* failure) {
  if (config.file.empty()) return MakeStderrAuditSink();
  auto file = MakeFileAuditSink(config.file);
  if (!file.ok()) {
    *failure = file.status();
    return MakeStderrAuditSink();
  }
  return std::move(file).value();
}

// Stops every session, expiring tokens upstream where the account says so
// (never in a fleet: the token is the fleet's), and waits for that at most
// `bound`.
void StopSessions(AccountSessions& sessions, bool in_fleet, std::chrono::seconds bound) {
  // Shared: a session may report after we stopped waiting.
  struct Countdown {
    absl::Mutex mutex;
    size_t pending ABSL_GUARDED_BY(mutex);
  };
  auto countdown = std::make_shared<Countdown>();
  {
    absl::MutexLock lock(&countdown->mutex);
    countdown->pending = sessions.size();
  }
  for (auto& [name, session] : sessions) {
    session->Stop(!in_fleet && session->expire_on_shutdown(), [countdown] {
      absl::MutexLock lock(&countdown->mutex);
      --countdown->pending;
    });
  }
  absl::MutexLock lock(&countdown->mutex);
  auto all_done = +[](size_t* pending) { return *pending == 0; };
  if (!countdown->mutex.AwaitWithTimeout(absl::Condition(all_done, &countdown->pending), absl::FromChrono(bound))) {
    spdlog::warn("gave up waiting for tokens to be expired upstream");
  }
}

// How long a restart waits for clients to leave, each round (MoveClients):
// past gRPC's backup poll (5 s), by which an idle client reads its GOAWAY.
constexpr std::chrono::milliseconds kClientsLeave{6000};

}  // namespace

// Every module of the running daemon, in the order each is built, and torn
// down in reverse. A constructor refers only to those above it; three links
// made in Start point down the list (the engine's meter to `metrics`, the
// warm keeper and the fleet to `sessions`), which is why Shutdown stops the
// fleet, the sessions, the scheduler and the engine before anything is
// destroyed.
struct Daemon::Parts {
  explicit Parts(const Config& config)
      : engine(EngineOptions(config)),
        upstream(engine, config.upstream),
        policy(std::make_shared<const Policy>(config.policy)),
        watches(policy),
        audit(OpenAuditSink(config.audit, &audit_failure),
              {.records = config.audit.queue,
               .bytes = config.audit.queue_bytes,
               .refusals_per_second = config.audit.refusal_rate,
               .refusal_burst = config.audit.refusal_burst}),
        metrics(AccountNames(config)),
        connections(config.limits, ConnectionsTheDescriptorsAllow(config.limits)),
        cache(config.cache, config.cache_max_bytes, ApiVersion(config.upstream.url)),
        core(connections, policy, sessions, audit, &metrics, config.limits, &cache, &scheduler,
             config.listen.https_proxy_hosts),
        http(core, config.limits),
        proxy(core, http),
        metrics_door(core),
        metrics_textfile([this] { return metrics.Collect().Text(); }) {}

  // The last segment of upstream.url (…/v1), as the API names versions.
  static std::string ApiVersion(const std::string& url) {
    return AsciiLower(url.substr(url.rfind('/') + 1));
  }

  static HttpEngine::Options EngineOptions(const Config& config) {
    HttpEngine::Options options{config.upstream.ca_file, config.upstream.max_connections,
                                config.upstream.max_response_bytes};
    for (const auto& [name, account] : config.accounts) {
      if (account.max_connections > 0) options.account_connections[name] = account.max_connections;
    }
    return options;
  }

  static std::vector<std::string> AccountNames(const Config& config) {
    std::vector<std::string> names;
    for (const auto& [name, account] : config.accounts) names.push_back(name);
    return names;
  }

  ServiceManager manager;
  HttpEngine engine;
  ThreadScheduler scheduler;
  std::unique_ptr<WarmKeeper> warm_keeper;  // with upstream.keep_warm
  StormClient upstream;
  std::unique_ptr<FileTokenStore> store;  // with state_dir
  PolicyHolder policy;
  AccountWatchHub watches;
  Status audit_failure;  // the audit file could not be opened (before `audit`: it is set while that is built)
  AuditLog audit;
  Metrics metrics;
  std::unique_ptr<Fleet> fleet;  // in fleet mode
  AccountSessions sessions;
  ConnectionTable connections;
  AnswerCache cache;
  BrokerCore core;
  HttpDoor http;
  ProxyDoor proxy;  // CONNECT in front of the HTTP door's tunnel server
  std::unique_ptr<GrpcDoor> grpc;  // made once the fleet is known
  MetricsDoor metrics_door;
  MetricsTextfile metrics_textfile;

  // Every door, in the order they start: the proxy door's tunnels are the
  // HTTP door's, so it starts after it and stops accepting before it.
  std::vector<Door*> doors() { return {grpc.get(), &http, &proxy, &metrics_door}; }
  std::vector<Door*> doors_last_first() {
    std::vector<Door*> all = doors();
    return {all.rbegin(), all.rend()};
  }
};

Daemon::Daemon(Config config) : config_(std::move(config)) {}

Daemon::~Daemon() { Shutdown(); }

Status Daemon::Start() {
  for (const std::string& warning : config_.warnings) spdlog::warn("{}", warning);
  parts_ = std::make_unique<Parts>(config_);
  Parts& p = *parts_;
  started_ = p.scheduler.Now();
  if (!p.audit_failure.ok()) return p.audit_failure;
  FlushAuditOnDeath(&p.audit);
  p.engine.SetMeter(&p.metrics);
  if (config_.upstream.keep_warm_connections > 0) StartWarmKeeper();
  if (Status started = p.engine.Start(); !started.ok()) return started;
  if (!config_.state_dir.empty()) {
    auto opened = FileTokenStore::Open(config_.state_dir);
    if (!opened.ok()) return opened.status();
    p.store = std::move(opened).value();
  }
  if (config_.fleet.enabled) {
    auto created = Fleet::Create(config_.fleet);
    if (!created.ok()) return created.status();
    p.fleet = std::move(created).value();
  }
  for (const auto& [name, account] : config_.accounts) {
    auto session = std::make_shared<AccountSession>(account, p.upstream, p.scheduler, p.store.get(), &p.watches,
                                                    &p.metrics, p.fleet.get());
    if (p.fleet) p.fleet->Attach(name, session, account.HoldsCredentials());
    p.sessions.emplace(name, std::move(session));
  }
  if (Status started = p.connections.Start(); !started.ok()) return started;
  AddBrokerGauges(p.metrics, p.sessions, p.engine, p.connections, p.audit, STORMBROKER_VERSION);
  if (p.fleet) AddFleetGauges(p.metrics, p.sessions, *p.fleet);
  p.metrics.AddCollector([&cache = p.cache](Exposition& out) {
    out.AddSingle("stormbroker_cache_bytes", "gauge", "Bytes of answers the cache holds (cache_max_bytes bounds it)",
                  static_cast<double>(cache.bytes()));
  });

  p.grpc = std::make_unique<GrpcDoor>(p.core, p.watches, p.audit, p.engine, p.fleet.get(),
                                      [&proxy = p.proxy] { return proxy.ForClients(); }, p.connections,
                                      p.scheduler, Parts::AccountNames(config_));
  // Sessions before doors: under socket activation callers are already
  // waiting, and a call that found its account not yet started would log
  // in instead of taking the token kept from the last run.
  for (auto& [name, session] : p.sessions) session->Start();
  if (p.fleet) p.fleet->Start();
  auto passed = TakeSystemdSockets();
  if (!passed.ok()) return passed.status();
  for (Door* door : p.doors()) {
    if (Status started = door->Start(config_, *passed); !started.ok()) return started;
    if (std::string where = door->Describe(); !where.empty()) spdlog::info("{}", where);
  }
  spdlog::info("serving {} account(s)", p.sessions.size());
  if (Status started = p.metrics_textfile.Start(config_.metrics); !started.ok()) return started;

  running_ = true;
  Heartbeat();
  return Status::Ok();
}

void Daemon::StartWarmKeeper() {
  Parts& p = *parts_;
  WarmKeeper::Options options{config_.upstream.keep_warm_connections, config_.upstream.keep_warm_for,
                              config_.upstream.keep_warm_interval};
  // A ping goes through an account that holds a token (the API answers an
  // unauthenticated one with an error, on a connection it may then close).
  p.warm_keeper = std::make_unique<WarmKeeper>(options, p.scheduler, [&p] {
    for (const auto& [name, session] : p.sessions) {
      AccountState state = session->Snapshot().state;
      if (state != AccountState::kActive && state != AccountState::kRefreshing) continue;
      Lane lane;
      lane.warming = true;
      session->Call("Utilities/Info/ping", nlohmann::json::object(), std::nullopt, [](Result<ApiOutcome>) {}, "",
                    std::move(lane));
      return;
    }
  });
  p.engine.SetAnswerWatcher(
      [keeper = p.warm_keeper.get()](const Lane& lane, const HttpResponse& response) { keeper->Answered(lane, response); });
  p.metrics.AddCollector([keeper = p.warm_keeper.get()](Exposition& out) {
    out.AddSingle("stormbroker_upstream_warm_pings_total", "counter",
                  "Pings sent to keep connections to the API open between calls (upstream.keep_warm)",
                  static_cast<double>(keeper->pings()));
  });
}

bool Daemon::WarmEnough() const {
  const Parts& p = *parts_;
  return !p.warm_keeper || p.warm_keeper->connected() || p.scheduler.Now() - started_ > kWarmReadyBound;
}

void Daemon::Reload() {
  Parts& p = *parts_;
  p.manager.Reloading();
  auto fresh = LoadConfig(config_.path);
  if (!fresh.ok()) {
    spdlog::error("reload rejected, keeping the running configuration: {}", fresh.status().message());
  } else {
    for (const std::string& warning : fresh->warnings) spdlog::warn("{}", warning);
    ReloadPlan plan = PlanReload(config_, *fresh);
    config_ = ApplyReload(config_, *fresh);
    p.policy.Set(std::make_shared<const Policy>(config_.policy));
    if (Status reopened = p.audit.Reopen(); !reopened.ok()) spdlog::error("{}", reopened.message());
    if (!plan.needs_restart.empty()) {
      spdlog::warn("reload: changed but kept until the next restart (stormbrokerd reads them only at start): {}",
                   fmt::join(plan.needs_restart, ", "));
    }
    spdlog::info("reloaded the policy from {} ({} rules); applied now: {}", config_.path, config_.policy.size(),
                 plan.applied.empty() ? std::string("no changes") : fmt::format("{}", fmt::join(plan.applied, ", ")));
  }
  std::vector<AccountSnapshot> snapshots;
  for (const auto& [name, session] : p.sessions) snapshots.push_back(session->Snapshot());
  p.manager.ReloadDone(SummarizeAccounts(snapshots));
}

// Every beat, on the scheduler's thread: status for systemd, readiness once
// every account has had its first say, and the watchdog ping. Since the
// scheduler runs the token timers too, a stuck scheduler stops the pings and
// systemd restarts the daemon.
void Daemon::Heartbeat() {
  Parts& p = *parts_;
  std::vector<AccountSnapshot> snapshots;
  for (const auto& [name, session] : p.sessions) {
    snapshots.push_back(session->Snapshot());
    AccountState state = snapshots.back().state;
    p.grpc->SetAccountHealth(name, state == AccountState::kActive || state == AccountState::kRefreshing);
  }
  std::string status = SummarizeAccounts(snapshots);
  if (p.fleet) {
    FleetStatus seen = p.fleet->Status();
    p.grpc->SetFleetHealth(seen.connected);
    if (!seen.connected) status = "fleet: " + seen.detail + "; " + status;
  }
  if (p.manager.ready()) {
    p.manager.Status(status);
  } else if (AccountsSettled(snapshots) && WarmEnough()) {
    spdlog::info("ready: {}", status);
    p.manager.Ready(status);
  } else {
    p.manager.Status("starting: " + status);
  }
  if (p.manager.watchdog_interval()) p.manager.Watchdog();
  std::chrono::milliseconds every = p.manager.ready() ? std::chrono::milliseconds(1000) : std::chrono::milliseconds(50);
  if (p.manager.watchdog_interval()) {
    every = std::min(every, std::chrono::duration_cast<std::chrono::milliseconds>(*p.manager.watchdog_interval() / 4));
  }
  p.scheduler.RunAt(p.scheduler.Now() + every, [this] { Heartbeat(); });
}

// A restart no client notices, when systemd holds the listening sockets
// for the next process. Clients are told to go away (doors/grpc/goaway.h,
// HttpDoor::GoAway) while both doors still serve and accept, so that one
// that moves is served at once; once the connections from before have gone,
// the doors stop accepting and the connections made meanwhile are told too:
// their clients' next connections wait in systemd's backlog. Each round waits
// at most `bound` (an idle gRPC client reads the GOAWAY at its library's
// backup poll, every 5 s); a connection still open after it is ended with
// the server, and its client's next call may fail.
void Daemon::MoveClients(std::chrono::milliseconds bound) {
  Parts& p = *parts_;
  for (bool accepting : {true, false}) {
    if (!accepting) {
      for (Door* door : p.doors_last_first()) door->StopAccepting();
    }
    uint64_t mark = p.connections.Mark();
    for (Door* door : p.doors()) door->GoAway();
    if (size_t left = p.connections.WaitForCloseBefore(mark, std::chrono::steady_clock::now() + bound)) {
      spdlog::warn("{} connection(s) still open {} ms after GOAWAY; ending them", left, bound.count());
    }
  }
}

void Daemon::Shutdown() {
  if (!parts_) return;
  Parts& p = *parts_;
  std::thread goaway;
  if (running_) {
    running_ = false;
    p.manager.Stopping();
    p.grpc->StopServing();  // every service NOT_SERVING from here on
    p.watches.CloseAll();
    if (p.grpc->handed_over_by_systemd()) MoveClients(std::min(kClientsLeave, config_.shutdown_timeout));
    // No new connections. Under socket activation systemd keeps the
    // listening sockets: new connections wait there for the next process.
    for (Door* door : p.doors_last_first()) door->StopAccepting();
    // GOAWAY on every gRPC connection: clients start no new call here, and
    // retry on their next connection, transparently, the calls the server
    // did not take. The gRPC server's shutdown waits for the calls in
    // flight, so it runs beside the drain below; its own deadline
    // (cancelling them) is a last resort behind the drain.
    goaway = std::thread([&p, last = config_.shutdown_timeout + std::chrono::seconds(5)] {
      p.grpc->Stop(std::chrono::system_clock::now() + last);
    });
    if (!p.core.Drain(config_.shutdown_timeout)) {
      spdlog::warn("calls still in flight after {} ms: answering them UNAVAILABLE", config_.shutdown_timeout.count());
      p.engine.CancelAll("the broker is shutting down");
      p.core.Drain(std::chrono::seconds(2));
    }
  }
  // Sessions first: their Stop answers calls still waiting for a token,
  // which the server's Shutdown would otherwise wait for. A leader gives up
  // its candidacies first, so that the next machine takes the token over
  // at once.
  if (p.fleet) p.fleet->Stop();
  StopSessions(p.sessions, p.fleet != nullptr, std::chrono::seconds(3));
  if (goaway.joinable()) goaway.join();
  p.scheduler.Stop();
  p.engine.Stop();
  // Every call has its answer by now. (The gRPC door stopped beside the
  // drain, unless the daemon never ran: a second Stop returns at once.)
  for (Door* door : p.doors_last_first()) {
    if (door) door->Stop(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  p.metrics_textfile.Stop();  // its last write counts every call
  FlushAuditOnDeath(nullptr);
  parts_.reset();
}

int RunDaemon(Config config) {
  Daemon daemon(std::move(config));
  if (Status started = daemon.Start(); !started.ok()) {
    spdlog::critical("{}", started.message());
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  for (;;) {
    int received = 0;
    sigwait(&signals, &received);
    if (received != SIGHUP) {
      spdlog::info("{}: shutting down", strsignal(received));
      break;
    }
    daemon.Reload();
  }
  daemon.Shutdown();
  return 0;
}

}  // namespace stormbroker
