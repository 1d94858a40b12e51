// Daemon logging: spdlog to stderr. Under systemd (JOURNAL_STREAM set) each
// line carries a <N> syslog priority prefix and no timestamp, which the
// journal adds itself; elsewhere, plain timestamped text.
#pragma once

namespace stormbroker {

void SetUpLogging(bool verbose);

}  // namespace stormbroker
