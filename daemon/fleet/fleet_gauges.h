// Fleet mode's gauges, read when metrics are asked for: whether this
// machine is in touch with etcd, its role for each account, and the
// requests to etcd that failed.
#pragma once

#include "fleet/fleet.h"
#include "observe/metrics.h"
#include "tokens/account_session.h"

namespace stormbroker {

// Adds them to `metrics`; `sessions` and `fleet` must outlive it.
void AddFleetGauges(Metrics& metrics, const AccountSessions& sessions, const Fleet& fleet);

}  // namespace stormbroker
