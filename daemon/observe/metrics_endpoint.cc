#include "observe/metrics_endpoint.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "access/loopback_peer.h"
#include "observe/mhd_log.h"
#include "net/tcp_socket.h"

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

}  // namespace

// libmicrohttpd's callbacks, with the endpoint as their context.
class MetricsEndpoint::Scrape {
 public:
  // A connection starts: its caller from the kernel, within the uid's share
  // of connections; otherwise it is ended at once.
  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           MHD_ConnectionNotificationCode code) {
    auto& endpoint = *static_cast<MetricsEndpoint*>(cls);
    auto* caller = static_cast<Caller*>(*socket_context);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
      if (caller) {
        absl::MutexLock lock(&endpoint.connections_mutex_);
        if (--endpoint.connections_[caller->uid] == 0) endpoint.connections_.erase(caller->uid);
      }
      delete caller;
      *socket_context = nullptr;
      return;
    }
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return;
    Result<Caller> identified = IdentifyLoopbackPeer(info->connect_fd);
    if (identified.ok()) {
      absl::MutexLock lock(&endpoint.connections_mutex_);
      unsigned& open = endpoint.connections_[identified->uid];
      if (open < kConnectionsPerUid) {
        ++open;
        *socket_context = new Caller(std::move(identified).value());
        return;
      }
    }
    shutdown(info->connect_fd, SHUT_RDWR);
  }

  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char*, const char*, size_t*, void**) {
    auto& endpoint = *static_cast<MetricsEndpoint*>(cls);
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const auto* caller = info ? static_cast<const Caller*>(info->socket_context) : nullptr;
    if (!caller) return Reply(connection, MHD_HTTP_FORBIDDEN, "the broker does not know who is calling\n", "text/plain");
    if (!endpoint.may_read_(*caller)) {
      AuditRecord record = StartAuditRecord(*caller, "metrics", "GetMetrics", "");
      record.decision = Decision::kDeny;
      record.detail = "no policy rule with metrics: true names uid " + std::to_string(caller->uid);
      endpoint.audit_.Record(std::move(record));
      return Reply(connection, MHD_HTTP_FORBIDDEN,
                   "uid " + std::to_string(caller->uid) + " (" + caller->user +
                       ") may not read the metrics; an administrator can add a policy rule with metrics: true\n",
                   "text/plain");
    }
    if (strcmp(url, "/metrics") != 0) {
      return Reply(connection, MHD_HTTP_NOT_FOUND, "the metrics are at /metrics\n", "text/plain");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
      return Reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n", "text/plain");
    }
    return Reply(connection, MHD_HTTP_OK, endpoint.render_(), kContentType);
  }
};

Status MetricsEndpoint::Start(const MetricsConfig& config) {
  if (config.listen) {
    auto fd = OpenTcpSocket(*config.listen);
    if (!fd.ok()) return Unavailable("metrics.listen: " + fd.status().message());
    WarnOfRestartGap("the metrics endpoint", *config.listen);
    daemon_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &Scrape::OnRequest,
        this,                                                                            //
        MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, const_cast<char*>("metrics endpoint"),  //
        MHD_OPTION_LISTEN_SOCKET, *fd,                                                   //
        MHD_OPTION_NOTIFY_CONNECTION, &Scrape::OnConnection, this,                       //
        MHD_OPTION_CONNECTION_LIMIT, 64u,                                                //
        MHD_OPTION_CONNECTION_TIMEOUT, kRequestTimeoutSeconds,                           //
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
