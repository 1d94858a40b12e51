#include "observe/metrics_textfile.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace stormbroker {

Status MetricsTextfile::Start(const MetricsConfig& config) {
  if (config.textfile.empty()) return Status::Ok();
  path_ = config.textfile;
  if (Status written = Write(); !written.ok()) return written;
  writer_ = std::thread([this, interval = config.interval] {
    for (bool last = false; !last;) {
      {
        absl::MutexLock lock(&mutex_);
        mutex_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(interval));
        last = stopping_;
      }
      if (Status written = Write(); !written.ok()) spdlog::warn("{}", written.message());
    }
  });
  spdlog::info("metrics written to {} every {} ms", path_, config.interval.count());
  return Status::Ok();
}

void MetricsTextfile::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

Status MetricsTextfile::Write() const {
  std::string temporary = path_ + ".XXXXXX";
  int fd = mkstemp(temporary.data());
  if (fd < 0) return Unavailable("cannot write metrics.textfile " + path_ + ": " + strerror(errno));
  std::string text = render_();
  // Readable by the node exporter, which runs as another user.
  bool written = fchmod(fd, 0644) == 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  written = close(fd) == 0 && written;
  if (!written || rename(temporary.c_str(), path_.c_str()) != 0) {
    Status failure = Unavailable("cannot write metrics.textfile " + path_ + ": " + strerror(errno));
    unlink(temporary.c_str());
    return failure;
  }
  return Status::Ok();
}

}  // namespace stormbroker
