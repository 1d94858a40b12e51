// The gauges of a running broker, read when metrics are asked for: each
// account's state and token deadlines, the upstream engine's load, the
// callers connected, audit records dropped, and the process' own.
#pragma once

#include <string>

#include "access/connection_table.h"
#include "observe/audit_log.h"
#include "observe/metrics.h"
#include "broker/broker_core.h"
#include "upstream/http_engine.h"

namespace stormbroker {

// Adds them to `metrics`; every argument must outlive it. `fleet` may be null.
void AddBrokerGauges(Metrics& metrics, const AccountSessions& sessions, const HttpEngine& engine,
                     const ConnectionTable& connections, const AuditLog& audit, const std::string& version);

}  // namespace stormbroker
