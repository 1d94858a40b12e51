// Where Prometheus gets the broker's metrics: GET /metrics on
// metrics.listen (libmicrohttpd, one thread), and metrics.textfile, written
// every metrics.interval for the node exporter's textfile collector: to a
// temporary file beside it, then renamed over it, so a reader never sees
// half a file.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "config/config.h"
#include "util/status.h"

struct MHD_Daemon;

namespace stormbroker {

class MetricsEndpoint {
 public:
  // `render` gives the text exposition; it runs on the endpoint's threads.
  explicit MetricsEndpoint(std::function<std::string()> render) : render_(std::move(render)) {}
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
  Status WriteTextfile() const;

  std::function<std::string()> render_;
  MHD_Daemon* daemon_ = nullptr;
  std::string textfile_;
  std::thread writer_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace stormbroker
