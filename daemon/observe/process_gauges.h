// The process' own gauges under the names every Prometheus client library
// uses (process_resident_memory_bytes, process_open_fds, ...), read from
// /proc/self when asked for, and stormbroker_build_info with the version.
#pragma once

#include <string>

#include "observe/exposition.h"

namespace stormbroker {

void AddProcessGauges(Exposition& out, const std::string& version);

}  // namespace stormbroker
