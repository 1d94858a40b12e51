// Where Prometheus gets the broker's metrics: GET /metrics on
// metrics.listen (libmicrohttpd, one thread), and metrics.textfile, written
// every metrics.interval for the node exporter's textfile collector: to a
// temporary file beside it, then renamed over it, so a reader never sees
// half a file.
//
// The metrics name every account and method in use, so the endpoint knows
// its caller as the HTTP door does (the owner of the client's loopback
// socket, from the kernel) and answers only callers that `may_read` admits
// (policy: a rule with metrics: true); the others get 403, audited. Each uid
// holds at most kConnectionsPerUid connections and a request must arrive
// within kRequestTimeout, so no local user can keep the scraper out.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "access/caller.h"
#include "config/config.h"
#include "observe/audit_log.h"
#include "util/status.h"

struct MHD_Daemon;

namespace stormbroker {

class MetricsEndpoint {
 public:
  static constexpr unsigned kConnectionsPerUid = 4;
  static constexpr unsigned kRequestTimeoutSeconds = 10;

  // `render` gives the text exposition; it and `may_read` run on the
  // endpoint's threads.
  MetricsEndpoint(std::function<std::string()> render, std::function<bool(const Caller&)> may_read, AuditLog& audit)
      : render_(std::move(render)), may_read_(std::move(may_read)), audit_(audit) {}
  ~MetricsEndpoint() { Stop(); }
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Listens and starts writing, as `config` asks (neither when it names
  // neither). UNAVAILABLE when the port cannot be had or the textfile's
  // directory cannot be written.
  Status Start(const MetricsConfig& config) ABSL_LOCKS_EXCLUDED(mutex_);
  // Stops both; the textfile gets one last write first. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  class Scrape;
  Status WriteTextfile() const;

  std::function<std::string()> render_;
  std::function<bool(const Caller&)> may_read_;
  AuditLog& audit_;
  absl::Mutex connections_mutex_;
  std::map<uid_t, unsigned> connections_ ABSL_GUARDED_BY(connections_mutex_);  // open, per uid
  MHD_Daemon* daemon_ = nullptr;
  std::string textfile_;
  std::thread writer_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace stormbroker
