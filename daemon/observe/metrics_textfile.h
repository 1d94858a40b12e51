// metrics.textfile: the metrics written every metrics.interval for the node
// exporter's textfile collector (a Prometheus on another machine scrapes
// that exporter): to a temporary file beside it, then renamed over it, so
// a reader never sees half a file. Readable by all (0644): the file is for
// whoever may read that directory.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "config/config.h"
#include "util/status.h"

namespace stormbroker {

class MetricsTextfile {
 public:
  // `render` gives the text exposition, on the writer's thread.
  explicit MetricsTextfile(std::function<std::string()> render) : render_(std::move(render)) {}
  ~MetricsTextfile() { Stop(); }
  MetricsTextfile(const MetricsTextfile&) = delete;
  MetricsTextfile& operator=(const MetricsTextfile&) = delete;

  // Writes the file once, then every interval (nothing when `config` names
  // no textfile); UNAVAILABLE when the first write fails.
  Status Start(const MetricsConfig& config) ABSL_LOCKS_EXCLUDED(mutex_);
  // One last write, then no more. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  Status Write() const;

  std::function<std::string()> render_;
  std::string path_;
  std::thread writer_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace stormbroker
