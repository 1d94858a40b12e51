#include "daemon.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <string.h>

#include <string>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

#include "access/connection_table.h"
#include "access/policy.h"
#include "config/reload_plan.h"
#include "fleet/fleet.h"
#include "observe/account_summary.h"
#include "observe/audit_log.h"
#include "observe/service_manager.h"
#include "service/broker_service.h"
#include "service/health_service.h"
#include "service/broker_gauges.h"
#include "service/http_door.h"
#include "service/metrics_endpoint.h"
#include "service/keep_warm.h"
#include "service/self_test.h"
#include "service/unix_listener.h"
#include "tokens/account_session.h"
#include "tokens/scheduler.h"
#include "tokens/token_store.h"
#include "upstream/http_engine.h"
#include "upstream/storm_client.h"

namespace stormbroker {
namespace {

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

// SIGHUP: the policy and shutdown_timeout change at once, without dropping a
// connection or a token, and the audit file is reopened (log rotation). A
// broken file changes nothing. Every other key that changed is named in the
// log as waiting for a restart (see config/reload_plan.h).
void Reload(Config& running, PolicyHolder& policy, AuditLog& audit) {
  auto fresh = LoadConfig(running.path);
  if (!fresh.ok()) {
    spdlog::error("reload rejected, keeping the running configuration: {}", fresh.status().message());
    return;
  }
  for (const std::string& warning : fresh->warnings) spdlog::warn("{}", warning);
  ReloadPlan plan = PlanReload(running, *fresh);
  running = ApplyReload(running, *fresh);
  policy.Set(std::make_shared<const Policy>(running.policy));
  if (Status reopened = audit.Reopen(); !reopened.ok()) spdlog::error("{}", reopened.message());
  if (!plan.needs_restart.empty()) {
    spdlog::warn("reload: changed but kept until the next restart (stormbrokerd reads them only at start): {}",
                 fmt::join(plan.needs_restart, ", "));
  }
  spdlog::info("reloaded the policy from {} ({} rules); applied now: {}", running.path, running.policy.size(),
               plan.applied.empty() ? std::string("no changes") : fmt::format("{}", fmt::join(plan.applied, ", ")));
}

// Every beat, on the scheduler's thread: status for systemd, readiness once
// every account has had its first say, and the watchdog ping. Since the
// scheduler runs the token timers too, a stuck scheduler stops the pings and
// systemd restarts the daemon.
void Heartbeat(Scheduler& scheduler, ServiceManager& manager, const AccountSessions& sessions,
               HealthService& health, const Fleet* fleet) {
  std::vector<AccountSnapshot> snapshots;
  for (const auto& [name, session] : sessions) {
    snapshots.push_back(session->Snapshot());
    AccountState state = snapshots.back().state;
    health.Set(HealthService::AccountName(name), state == AccountState::kActive || state == AccountState::kRefreshing);
  }
  std::string status = SummarizeAccounts(snapshots);
  if (fleet) {
    FleetStatus seen = fleet->Status();
    health.Set(HealthService::kFleet, seen.connected);
    if (!seen.connected) status = "fleet: " + seen.detail + "; " + status;
  }
  if (manager.ready()) {
    manager.Status(status);
  } else if (AccountsSettled(snapshots)) {
    spdlog::info("ready: {}", status);
    manager.Ready(status);
  } else {
    manager.Status("starting: " + status);
  }
  if (manager.watchdog_interval()) manager.Watchdog();
  std::chrono::milliseconds every = manager.ready() ? std::chrono::milliseconds(1000) : std::chrono::milliseconds(50);
  if (manager.watchdog_interval()) {
    every = std::min(every, std::chrono::duration_cast<std::chrono::milliseconds>(*manager.watchdog_interval() / 4));
  }
  scheduler.RunAt(scheduler.Now() + every, [&, fleet] { Heartbeat(scheduler, manager, sessions, health, fleet); });
}

size_t OpenDescriptors() {
  size_t count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir)) ++count;
    closedir(dir);
  }
  return count > 3 ? count - 3 : 0;  // ".", ".." and the directory's own fd
}

// How many callers' connections the descriptors allow (two each: gRPC's and
// the connection table's), keeping limits.reserved_descriptors for the rest.
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

}  // namespace

int RunDaemon(Config config) {
  for (const std::string& warning : config.warnings) spdlog::warn("{}", warning);
  ServiceManager manager;
  HttpEngine engine({config.upstream.ca_file, config.upstream.max_connections, config.upstream.max_response_bytes});
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
  AuditLog audit(std::move(audit_sink), {.records = config.audit.queue,
                                         .bytes = config.audit.queue_bytes,
                                         .refusals_per_second = config.audit.refusal_rate,
                                         .refusal_burst = config.audit.refusal_burst});
  std::vector<std::string> account_names;
  for (const auto& [name, account] : config.accounts) account_names.push_back(name);
  Metrics metrics(account_names);
  std::unique_ptr<Fleet> fleet;
  if (config.fleet.enabled) {
    auto created = Fleet::Create(config.fleet);
    if (!created.ok()) {
      spdlog::critical("{}", created.status().message());
      return 1;
    }
    fleet = std::move(created).value();
  }
  AccountSessions sessions;
  for (const auto& [name, account] : config.accounts) {
    auto session = std::make_shared<AccountSession>(account, upstream, scheduler, store.get(), &watches, &metrics,
                                                    fleet.get());
    if (fleet) fleet->Attach(name, session, account.HoldsCredentials());
    sessions.emplace(name, std::move(session));
  }
  ConnectionTable connections(config.limits, ConnectionsTheDescriptorsAllow(config.limits));
  if (Status started = connections.Start(); !started.ok()) {
    spdlog::critical("{}", started.message());
    return 1;
  }
  AddBrokerGauges(metrics, sessions, engine, connections, audit, STORMBROKER_VERSION, fleet.get());
  CallDesk desk(policy, sessions, audit, &metrics);
  BrokerService service(connections, policy, sessions, desk, watches, audit, metrics, fleet.get());
  HealthService health(connections, policy);

  // Health and reflection let generic gRPC tools find their way around.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.RegisterService(&health);
  // Bigger messages are refused before they reach a handler; clients queue
  // calls beyond a connection's share instead of having them refused.
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.limits.max_request_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, static_cast<int>(config.limits.calls_per_connection));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    spdlog::critical("gRPC server failed to start");
    return 1;
  }
  health.Set("", true);
  health.Set("stormbroker.v1.Broker", true);
  for (const auto& [name, session] : sessions) health.Set(HealthService::AccountName(name), false);
  if (Status self_test = CheckPeerIdentification(server.get(), &connections); !self_test.ok()) {
    spdlog::critical("{}", self_test.message());
    return 1;
  }
  auto passed = TakeSystemdSockets();
  if (!passed.ok()) {
    spdlog::critical("{}", passed.status().message());
    return 1;
  }
  Result<std::unique_ptr<UnixListener>> listener = std::unique_ptr<UnixListener>();
  if (passed->grpc) {
    listener = UnixListener::Adopt(*passed->grpc);
    spdlog::info("serving {} account(s) on the socket systemd passed (listen.socket is not used)", sessions.size());
  } else {
    listener = UnixListener::Open(config.listen);
    if (listener.ok()) spdlog::info("serving {} account(s) on {}", sessions.size(), config.listen.socket_path);
  }
  if (!listener.ok()) {
    spdlog::critical("{}", listener.status().message());
    return 1;
  }
  Status accepting = (*listener)->Start(server.get(), &connections, [&desk](const Caller& caller, const Status& refusal) {
    AuditRecord record = StartAuditRecord(caller, "grpc", "connect", "");
    record.decision = "limit";
    desk.Conclude(std::move(record), refusal);
  });
  if (!accepting.ok()) {
    spdlog::critical("{}", accepting.message());
    return 1;
  }
  // The second door: the Storm API's own paths over HTTP (when configured).
  HttpDoor http(connections, desk, policy, config.limits);
  if (Status opened = http.Start(config.listen, *passed); !opened.ok()) {
    spdlog::critical("{}", opened.message());
    return 1;
  }
  MetricsEndpoint metrics_endpoint([&metrics] { return metrics.Collect().Text(); });
  if (Status started = metrics_endpoint.Start(config.metrics); !started.ok()) {
    spdlog::critical("{}", started.message());
    return 1;
  }
  for (auto& [name, session] : sessions) session->Start();
  if (fleet) fleet->Start();
  Heartbeat(scheduler, manager, sessions, health, fleet.get());
  GrpcKeepWarm keep_warm(scheduler, *server);
  keep_warm.Start();

  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  for (;;) {
    int received = 0;
    sigwait(&signals, &received);
    if (received == SIGHUP) {
      manager.Reloading();
      Reload(config, policy, audit);
      std::vector<AccountSnapshot> snapshots;
      for (const auto& [name, session] : sessions) snapshots.push_back(session->Snapshot());
      manager.ReloadDone(SummarizeAccounts(snapshots));
      continue;
    }
    spdlog::info("{}: shutting down", strsignal(received));
    break;
  }
  // Stop taking connections and calls, end watch streams, let calls in
  // flight finish within shutdown_timeout and answer the rest UNAVAILABLE
  // (none is cut silently), then expire the tokens that should not outlive
  // the daemon.
  manager.Stopping();
  keep_warm.Stop();
  health.Shutdown();  // every service NOT_SERVING from here on
  (*listener)->Stop();
  watches.CloseAll();
  auto drain_until = std::chrono::steady_clock::now() + config.shutdown_timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(drain_until - std::chrono::steady_clock::now());
  };
  bool drained = service.Drain(left());
  drained = http.Drain(left()) && drained;
  if (!drained) {
    spdlog::warn("calls still in flight after {} ms: answering them UNAVAILABLE", config.shutdown_timeout.count());
    engine.CancelAll("the broker is shutting down");
    service.Drain(std::chrono::seconds(2));
    http.Drain(std::chrono::seconds(2));
  }
  // Sessions first: their Stop answers calls still waiting for a token, which
  // the server's Shutdown would otherwise wait for.
  // A leader gives up its candidacies first, so that the next machine takes
  // the token over at once.
  if (fleet) fleet->Stop();
  StopSessions(sessions, fleet != nullptr, std::chrono::seconds(3));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  scheduler.Stop();
  engine.Stop();
  http.Stop();  // every HTTP call has its answer by now
  metrics_endpoint.Stop();  // the textfile's last write counts every call
  server->Wait();
  return 0;
}


}  // namespace stormbroker
