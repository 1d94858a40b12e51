#include "fleet/fleet_gauges.h"

namespace stormbroker {
namespace {

void Collect(Exposition& out, const AccountSessions& sessions, const Fleet& fleet) {
  out.AddSingle("stormbroker_fleet_connected", "gauge",
                "1 while this machine holds its lease in the fleet's etcd, 0 while cut off from it",
                fleet.Status().connected ? 1.0 : 0.0);
  out.AddSingle("stormbroker_fleet_etcd_errors_total", "counter",
                "Requests to etcd that failed (each member tried counts: unreachable, too slow, or refused)",
                static_cast<double>(fleet.etcd_errors()));
  MetricFamily& role = out.Family("stormbroker_fleet_role", "gauge",
                                  "1 for this machine's role for each account (leader, follower, stranded), 0 for the others");
  for (const auto& [name, session] : sessions) {
    std::string current = session->Snapshot().fleet_role;
    for (TokenRole each : {TokenRole::kLead, TokenRole::kFollow, TokenRole::kStranded}) {
      role.samples.push_back({"", {{"account", name}, {"role", TokenRoleName(each)}}, current == TokenRoleName(each) ? 1.0 : 0.0});
    }
  }
}

}  // namespace

void AddFleetGauges(Metrics& metrics, const AccountSessions& sessions, const Fleet& fleet) {
  metrics.AddCollector([&sessions, &fleet](Exposition& out) { Collect(out, sessions, fleet); });
}

}  // namespace stormbroker
