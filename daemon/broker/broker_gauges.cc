#include "broker/broker_gauges.h"

#include "observe/process_gauges.h"

namespace stormbroker {
namespace {

constexpr AccountState kStates[] = {AccountState::kStarting,      AccountState::kActive,
                                    AccountState::kRefreshing,    AccountState::kNeedsPasscode,
                                    AccountState::kLoginFailed,   AccountState::kUnreachable};

double Seconds(std::chrono::system_clock::time_point time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

void AddAccountGauges(Exposition& out, const AccountSessions& sessions) {
  std::vector<AccountSnapshot> snapshots;
  for (const auto& [name, session] : sessions) snapshots.push_back(session->Snapshot());
  MetricFamily& state = out.Family("stormbroker_account_state", "gauge",
                                   "1 for the state each account is in, 0 for the others");
  for (const AccountSnapshot& account : snapshots) {
    for (AccountState each : kStates) {
      state.samples.push_back(
          {"", {{"account", account.name}, {"state", AccountStateName(each)}}, account.state == each ? 1.0 : 0.0});
    }
  }
  auto deadline = [&](const char* name, const char* help,
                      std::optional<std::chrono::system_clock::time_point> AccountSnapshot::*field) {
    MetricFamily& family = out.Family(name, "gauge", help);
    for (const AccountSnapshot& account : snapshots) {
      if (account.*field) family.samples.push_back({"", {{"account", account.name}}, Seconds(*(account.*field))});
    }
  };
  deadline("stormbroker_token_inactivity_deadline_timestamp_seconds",
           "When the held token dies unless used or kept alive (Unix time); absent without a token",
           &AccountSnapshot::inactivity_deadline);
  deadline("stormbroker_token_hard_deadline_timestamp_seconds",
           "When the held token dies whatever is done (Unix time); absent without a token",
           &AccountSnapshot::hard_deadline);
  // Only prompt accounts wait for a person; TOTP accounts log in by themselves.
  MetricFamily& passcode = out.Family(
      "stormbroker_passcode_needed_in_seconds", "gauge",
      "For two-factor prompt accounts: seconds until the token dies and an operator must log in (0: needed now)");
  auto now = std::chrono::system_clock::now();
  for (const AccountSnapshot& account : snapshots) {
    if (account.two_factor != TwoFactor::kPrompt) continue;
    double left = account.hard_deadline && account.state != AccountState::kNeedsPasscode
                      ? std::max(0.0, std::chrono::duration<double>(*account.hard_deadline - now).count())
                      : 0.0;
    passcode.samples.push_back({"", {{"account", account.name}}, left});
  }
}

}  // namespace

void AddBrokerGauges(Metrics& metrics, const AccountSessions& sessions, const HttpEngine& engine,
                     const ConnectionTable& connections, const AuditLog& audit, const std::string& version) {
  metrics.AddCollector([&sessions](Exposition& out) { AddAccountGauges(out, sessions); });
  metrics.AddCollector([&sessions, &engine](Exposition& out) {
    MetricFamily& waiting = out.Family("stormbroker_upstream_queue_calls", "gauge",
                                       "Callers' requests waiting in line for an upstream connection, by account");
    MetricFamily& busy = out.Family("stormbroker_upstream_account_connections_busy", "gauge",
                                    "Upstream connections carrying a request of the account now");
    MetricFamily& paused = out.Family("stormbroker_upstream_paused", "gauge",
                                      "1 while the Storm API has asked the broker to slow down for the account");
    MetricFamily& protocol = out.Family("stormbroker_upstream_protocol_info", "gauge",
                                        "1 for the HTTP version of the account's last answer from the API");
    for (const auto& [name, session] : sessions) {
      HttpEngine::AccountLoad load = engine.CurrentLoad(name);
      waiting.samples.push_back({"", {{"account", name}}, static_cast<double>(load.waiting)});
      busy.samples.push_back({"", {{"account", name}}, static_cast<double>(load.busy)});
      paused.samples.push_back({"", {{"account", name}}, load.paused_until ? 1.0 : 0.0});
      if (!load.protocol.empty()) protocol.samples.push_back({"", {{"account", name}, {"protocol", load.protocol}}, 1.0});
    }
  });
  metrics.AddCollector([&engine, &connections, &audit](Exposition& out) {
    HttpEngine::Load load = engine.CurrentLoad();
    out.AddSingle("stormbroker_upstream_connections_busy", "gauge", "Upstream connections carrying a request now",
          static_cast<double>(load.busy));
    out.AddSingle("stormbroker_upstream_calls_waiting", "gauge", "Requests waiting in line for an upstream connection",
          static_cast<double>(load.waiting));
    out.AddSingle("stormbroker_upstream_calls_refused_total", "counter",
          "Requests refused at once because the line for the upstream was full", static_cast<double>(load.refused));
    MetricFamily& open = out.Family("stormbroker_caller_connections", "gauge",
                                    "Callers' connections open now, by door (a proxy tunnel counts where it is now)");
    for (const auto& [door, count] : connections.ConnectionsByDoor()) {
      open.samples.push_back({"", {{"door", door}}, static_cast<double>(count)});
    }
    out.AddSingle("stormbroker_caller_connections_limit", "gauge",
                  "The most connections all callers together may hold (limits.connections, and the descriptors)",
                  static_cast<double>(connections.max_connections()));
    out.AddSingle("stormbroker_audit_records_dropped_total", "counter",
          "Audit records dropped because the trail's queue was full", static_cast<double>(audit.dropped()));
  });
  metrics.AddCollector([version](Exposition& out) { AddProcessGauges(out, version); });
}

}  // namespace stormbroker
