#include "service/metrics_endpoint.h"

#include <fcntl.h>
#include <microhttpd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "service/mhd_log.h"
#include "service/tcp_socket.h"

namespace stormbroker {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

MHD_Result Reply(MHD_Connection* connection, unsigned int status, const std::string& body, const char* type) {
  MHD_Response* response = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                           MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*,
                     const char*, size_t*, void**) {
  const auto& render = *static_cast<const std::function<std::string()>*>(cls);
  if (strcmp(url, "/metrics") != 0) {
    return Reply(connection, MHD_HTTP_NOT_FOUND, "the metrics are at /metrics\n", "text/plain");
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    return Reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n", "text/plain");
  }
  return Reply(connection, MHD_HTTP_OK, render(), kContentType);
}

}  // namespace

Status MetricsEndpoint::Start(const MetricsConfig& config) {
  if (config.listen) {
    auto fd = OpenTcpSocket(*config.listen);
    if (!fd.ok()) return Unavailable("metrics.listen: " + fd.status().message());
    daemon_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &OnRequest, &render_,
        MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, const_cast<char*>("metrics endpoint"),  //
        MHD_OPTION_LISTEN_SOCKET, *fd,                                                   //
        MHD_OPTION_CONNECTION_LIMIT, 64u,                                                //
        MHD_OPTION_CONNECTION_TIMEOUT, 30u,                                              //
        MHD_OPTION_END);
    if (!daemon_) {
      close(*fd);
      return Unavailable("libmicrohttpd could not serve metrics.listen");
    }
    spdlog::info("metrics at http://{}:{}/metrics", config.listen->host, config.listen->port);
  }
  if (!config.textfile.empty()) {
    textfile_ = config.textfile;
    if (Status written = WriteTextfile(); !written.ok()) return written;
    writer_ = std::thread([this, interval = config.interval] {
      for (bool last = false; !last;) {
        {
          absl::MutexLock lock(&mutex_);
          mutex_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(interval));
          last = stopping_;
        }
        if (Status written = WriteTextfile(); !written.ok()) spdlog::warn("{}", written.message());
      }
    });
    spdlog::info("metrics written to {} every {} ms", textfile_, config.interval.count());
  }
  return Status::Ok();
}

void MetricsEndpoint::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
  if (daemon_) MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

Status MetricsEndpoint::WriteTextfile() const {
  std::string temporary = textfile_ + ".XXXXXX";
  int fd = mkstemp(temporary.data());
  if (fd < 0) return Unavailable("cannot write metrics.textfile " + textfile_ + ": " + strerror(errno));
  std::string text = render_();
  // Readable by the node exporter, which runs as another user.
  bool written = fchmod(fd, 0644) == 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  written = close(fd) == 0 && written;
  if (!written || rename(temporary.c_str(), textfile_.c_str()) != 0) {
    Status failure = Unavailable("cannot write metrics.textfile " + textfile_ + ": " + strerror(errno));
    unlink(temporary.c_str());
    return failure;
  }
  return Status::Ok();
}

}  // namespace stormbroker
