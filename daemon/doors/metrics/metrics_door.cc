#include "doors/metrics/metrics_door.h"

#include <microhttpd.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "access/loopback_peer.h"
#include "broker/refusal.h"
#include "net/tcp_socket.h"
#include "observe/mhd_log.h"

namespace stormbroker {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";
// A bound on the door's own table; each uid's share is the core's.
constexpr unsigned kConnectionLimit = 64;

MHD_Result Reply(MHD_Connection* connection, unsigned int status, const std::string& body, const char* type) {
  MHD_Response* response = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                           MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

MHD_Result ReplyText(MHD_Connection* connection, unsigned int status, const std::string& text) {
  return Reply(connection, status, text + "\n", "text/plain");
}

}  // namespace

// libmicrohttpd's callbacks, with the door as their context; the socket
// context holds the connection's descriptor once the core admitted it.
class MetricsDoor::Scrape {
 public:
  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           MHD_ConnectionNotificationCode code) {
    auto& door = *static_cast<MetricsDoor*>(cls);
    auto* admitted = static_cast<int*>(*socket_context);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
      if (admitted) door.core_.ForgetConnection(*admitted);
      delete admitted;
      *socket_context = nullptr;
      return;
    }
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return;
    int fd = info->connect_fd;
    Result<Caller> caller = IdentifyLoopbackPeer(fd);
    if (!caller.ok()) {
      door.core_.RefuseUnidentified(DoorKind::kMetrics, caller.status());
    } else if (door.core_.AdmitConnection(fd, *caller, DoorKind::kMetrics).ok()) {
      *socket_context = new int(fd);
      return;
    }
    shutdown(fd, SHUT_RDWR);
  }

  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char*, const char*, size_t*, void**) {
    auto& door = *static_cast<MetricsDoor*>(cls);
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const auto* fd = info ? static_cast<const int*>(info->socket_context) : nullptr;
    if (!fd) return ReplyText(connection, MHD_HTTP_FORBIDDEN, "the broker does not know who is calling");
    auto request = door.core_.Begin(*fd, DoorKind::kMetrics, Rpc::kGetMetrics, /*drains=*/false);
    if (!request.ok()) {
      return ReplyText(connection, ShapeOf(request.status().code()).http_status, request.status().message());
    }
    // Who may read comes first: a refused caller learns nothing, not even the path.
    auto text = door.core_.MetricsForReader(*request);
    if (!text.ok()) return ReplyText(connection, ShapeOf(text.status().code()).http_status, text.status().message());
    if (strcmp(url, "/metrics") != 0) return ReplyText(connection, MHD_HTTP_NOT_FOUND, "the metrics are at /metrics");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
      return ReplyText(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics");
    }
    return Reply(connection, MHD_HTTP_OK, *text, kContentType);
  }
};

Status MetricsDoor::Start(const Config& daemon_config, const PassedSockets&) {
  const MetricsConfig& config = daemon_config.metrics;
  if (!config.listen) return Status::Ok();
  auto fd = OpenTcpSocket(*config.listen);
  if (!fd.ok()) return Unavailable("metrics.listen: " + fd.status().message());
  WarnOfRestartGap("the metrics endpoint", *config.listen);
  daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
                             &Scrape::OnRequest, this,                                                     //
                             MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, const_cast<char*>("metrics door"),  //
                             MHD_OPTION_LISTEN_SOCKET, *fd,                                               //
                             MHD_OPTION_NOTIFY_CONNECTION, &Scrape::OnConnection, this,                   //
                             MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,                               //
                             MHD_OPTION_END);
  if (!daemon_) {
    close(*fd);
    return Unavailable("libmicrohttpd could not serve metrics.listen");
  }
  where_ = fmt::format("metrics door on http://{}:{}/metrics", config.listen->host, config.listen->port);
  return Status::Ok();
}

void MetricsDoor::Stop(std::chrono::system_clock::time_point) {
  if (daemon_) MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
  where_.clear();
}

}  // namespace stormbroker
