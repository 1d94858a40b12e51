// What a reload (SIGHUP) does with a new configuration, key by key: the
// policy and shutdown_timeout change at once; every other key holds tokens,
// sockets, threads or sizes fixed at start, so a change to it is named (by
// its path in the file, e.g. accounts.prod.token_timeout) as needing a
// restart, and the running value stays.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace stormbroker {

struct ReloadPlan {
  std::vector<std::string> applied;        // changed keys that take effect now
  std::vector<std::string> needs_restart;  // changed keys that wait for a restart
};

// Compares every key of `fresh` with `running`.
ReloadPlan PlanReload(const Config& running, const Config& fresh);

// `running` with the keys PlanReload applies taken from `fresh`: the
// configuration in force after the reload.
Config ApplyReload(const Config& running, const Config& fresh);

}  // namespace stormbroker
