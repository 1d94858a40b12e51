#include "observe/service_manager.h"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <absl/synchronization/mutex.h>

namespace stormbroker {

ServiceManager::ServiceManager() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);
}

void ServiceManager::Notify(const std::string& message) { sd_notify(0, message.c_str()); }

void ServiceManager::Ready(const std::string& status) {
  absl::MutexLock lock(&mutex_);
  ready_ = true;
  last_status_ = status;
  Notify("READY=1\nSTATUS=" + status);
}

void ServiceManager::Status(const std::string& status) {
  absl::MutexLock lock(&mutex_);
  if (status == last_status_) return;
  last_status_ = status;
  Notify("STATUS=" + status);
}

void ServiceManager::Reloading() { Notify("RELOADING=1"); }

void ServiceManager::ReloadDone(const std::string& status) {
  absl::MutexLock lock(&mutex_);
  last_status_ = status;
  Notify("READY=1\nSTATUS=" + status);
}

void ServiceManager::Stopping() { Notify("STOPPING=1\nSTATUS=stopping: finishing calls in flight"); }

void ServiceManager::Watchdog() { Notify("WATCHDOG=1"); }

bool ServiceManager::ready() const {
  absl::MutexLock lock(&mutex_);
  return ready_;
}

}  // namespace stormbroker
