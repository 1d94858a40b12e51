// The running daemon: every module, built in the order each needs the
// others, served until shut down. main() makes one: Start, then Reload on
// SIGHUP and Shutdown on SIGTERM or SIGINT (RunDaemon does that loop).
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "config/config.h"
#include "util/status.h"

namespace stormbroker {

class Daemon {
 public:
  explicit Daemon(Config config);
  // Shuts down first if it is running.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Builds and starts everything, doors last. The first failure is returned
  // (what to do included); whatever had started is stopped again.
  Status Start();
  // SIGHUP: the policy and shutdown_timeout change at once, without dropping
  // a connection or a token, and the audit file is reopened (log rotation).
  // A broken file changes nothing. Every other key that changed is named in
  // the log as waiting for a restart (config/reload_plan.h).
  void Reload();
  // SIGTERM: stops taking connections and calls, ends watch streams, lets
  // calls in flight finish within shutdown_timeout and answers the rest
  // UNAVAILABLE (none is cut silently), then expires the tokens that should
  // not outlive the daemon and stops. Idempotent.
  void Shutdown();

 private:
  struct Parts;  // the modules, in construction order
  void Heartbeat();
  // Under socket activation: tells every client to go away and waits for
  // them to leave, each of two rounds at most `bound` (daemon.cc).
  void MoveClients(std::chrono::milliseconds bound);
  // upstream.keep_warm: the keeper, its pings and its metric (before the
  // engine starts: it watches the engine's answers).
  void StartWarmKeeper();
  // With upstream.keep_warm, readiness waits for the API's first answer
  // (a kept token's confirmation, a login), at most kWarmReadyBound: a
  // caller after `systemctl restart` returns finds a connection open.
  bool WarmEnough() const;
  static constexpr std::chrono::seconds kWarmReadyBound{2};

  Config config_;
  std::unique_ptr<Parts> parts_;
  bool running_ = false;
  std::chrono::steady_clock::time_point started_;  // Start was called
};

// Start, then serve signals until SIGTERM or SIGINT; the process exit code.
// SIGTERM, SIGINT and SIGHUP must be blocked in every thread before it is
// called (it takes them with sigwait).
int RunDaemon(Config config);

}  // namespace stormbroker
