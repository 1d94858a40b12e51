// Daemon logging: spdlog to stderr. Under systemd (JOURNAL_STREAM set) each
// line carries a <N> syslog priority prefix and no timestamp, which the
// journal adds itself; elsewhere, plain timestamped text.
//
// A log line is one line: text a caller chose (a method, an account name, a
// header) goes in only through Printable, so that nobody can start a line
// of their own in the log.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>

#include <absl/synchronization/mutex.h>

#include "util/printable.h"

namespace stormbroker {

void SetUpLogging(bool verbose);

// Warnings about refused callers, at most one per uid a second: a caller
// refused in a loop must not fill the journal (the audit trail holds every
// refusal, at its own bounded rate). A line written after a quiet spell
// says how many of the uid's refusals were left out before it.
class RefusalLog {
 public:
  // Logs `message` (already Printable where a caller chose it) at warning level.
  void Warn(uid_t uid, const std::string& message) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct Seen {
    std::chrono::steady_clock::time_point last;
    uint64_t left_out = 0;
  };
  absl::Mutex mutex_;
  std::unordered_map<uid_t, Seen> seen_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace stormbroker
