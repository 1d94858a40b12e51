// The daemon's side of systemd's notify protocol (sd_notify): readiness,
// status text, watchdog pings, reload and stop. Every call does nothing when
// no service manager listens (NOTIFY_SOCKET unset), so the same daemon runs
// in a terminal, under systemd, or under a test that plays systemd.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <absl/synchronization/mutex.h>

namespace stormbroker {

class ServiceManager {
 public:
  ServiceManager();

  void Ready(const std::string& status);
  // Sends STATUS= only when the text changed.
  void Status(const std::string& status);
  void Reloading();
  void ReloadDone(const std::string& status);
  void Stopping();
  void Watchdog();

  // How often systemd wants a watchdog ping (WatchdogSec=), if at all.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }
  bool ready() const;

 private:
  void Notify(const std::string& message);

  std::optional<std::chrono::microseconds> watchdog_;
  mutable absl::Mutex mutex_;
  std::string last_status_ ABSL_GUARDED_BY(mutex_);
  bool ready_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace stormbroker
