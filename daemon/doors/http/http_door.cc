#include "doors/http/http_door.h"

#include <microhttpd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "access/browser_check.h"
#include "doors/http/http_exchange.h"
#include "net/tcp_socket.h"
#include "net/unix_socket.h"
#include "observe/mhd_log.h"

namespace stormbroker {
namespace {

// What one connection may hold for its headers and buffers (MHD's memory
// pool per connection; a request's body passes through it in pieces and is
// bounded by max_request_size). 16 KiB holds any client's headers; at 256
// connections 64 KiB cost the daemon 15 MiB more resident memory.
constexpr size_t kConnectionMemory = 16 << 10;

}  // namespace

HttpDoor::HttpDoor(BrokerCore& core, const LimitsConfig& limits) : core_(core), limits_(limits) {}

HttpDoor::~HttpDoor() { Stop({}); }

Status HttpDoor::Start(const Config& config, const PassedSockets& passed) {
  const ListenConfig& listen = config.listen;
  if (passed.http_unix) {
    if (Status served = Serve(*passed.http_unix, DoorKind::kHttpUnix, nullptr); !served.ok()) return served;
    where_.push_back("HTTP door on the Unix socket systemd passed (listen.http_socket is not used)");
  } else if (!listen.http_socket.empty()) {
    auto fd = OpenUnixSocket(listen.http_socket, listen.mode, listen.group, &socket_file_);
    if (!fd.ok()) return fd.status();
    if (Status served = Serve(*fd, DoorKind::kHttpUnix, nullptr); !served.ok()) return served;
    where_.push_back("HTTP door on " + listen.http_socket);
  }
  if (!listen.http && !passed.http_tcp) return Status::Ok();
  std::optional<Tls> tls;
  if (!listen.http_tls_cert_file.empty()) {
    std::ifstream cert_file(listen.http_tls_cert_file);
    std::stringstream cert;
    cert << cert_file.rdbuf();
    auto key = ReadSecretFile(listen.http_tls_key_file);
    if (!cert_file || !key.ok()) {
      return Unavailable("cannot read listen.http_tls: " +
                         (key.ok() ? listen.http_tls_cert_file : key.status().message()));
    }
    tls = Tls{cert.str(), std::move(key).value()};
  }
  const char* scheme = tls ? "https" : "http";
  if (passed.http_tcp) {
    if (Status served = Serve(*passed.http_tcp, DoorKind::kHttpTcp, tls ? &*tls : nullptr); !served.ok()) return served;
    where_.push_back(fmt::format("HTTP door ({}) on the loopback socket systemd passed (listen.http is not used)", scheme));
    return Status::Ok();
  }
  auto fds = OpenLoopbackSockets(*listen.http);
  if (!fds.ok()) return fds.status();
  for (int fd : *fds) {
    if (Status served = Serve(fd, DoorKind::kHttpTcp, tls ? &*tls : nullptr); !served.ok()) return served;
  }
  where_.push_back(fmt::format("HTTP door on {}://{}:{}{}", scheme, listen.http->host, listen.http->port,
                               fds->size() > 1 ? " (and the same port on the other loopback address)" : ""));
  WarnOfRestartGap("the HTTP door", *listen.http);
  return Status::Ok();
}

std::string HttpDoor::Describe() const {
  std::string described;
  for (const std::string& where : where_) described += (described.empty() ? "" : "; ") + where;
  return described;
}

Status HttpDoor::ServeTunnels(const std::string& leaf_cert, const Secret& leaf_key,
                              const std::vector<std::string>& hosts) {
  Tls tls{leaf_cert, leaf_key.Clone()};
  std::vector<std::string> host_values;
  for (const std::string& host : hosts) {
    host_values.push_back(host);
    host_values.push_back(host + ":443");
  }
  if (Status served = Serve(-1, DoorKind::kHttpsProxy, &tls, std::move(host_values)); !served.ok()) return served;
  tunnels_ = servers_.back().get();
  return Status::Ok();
}

Status HttpDoor::AdoptTunnel(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (!tunnels_ || getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return Unavailable("the proxy door's tunnel could not be served");
  }
  // libmicrohttpd closes the socket itself when it cannot take it.
  if (MHD_add_connection(tunnels_->daemon, fd, reinterpret_cast<sockaddr*>(&address), length) != MHD_YES) {
    return Unavailable(std::string("libmicrohttpd could not take a tunnel: ") + strerror(errno));
  }
  return Status::Ok();
}

Status HttpDoor::Serve(int listen_fd, DoorKind kind, const Tls* tls, std::vector<std::string> hosts) {
  auto server = std::make_unique<Server>();
  server->door = this;
  server->kind = kind;
  server->hosts = std::move(hosts);
  if (kind == DoorKind::kHttpTcp) {
    auto bound = BoundAddress(listen_fd);
    if (!bound.ok()) {
      close(listen_fd);
      return bound.status();
    }
    server->hosts = DoorHosts(bound->host, bound->port);
  }
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                       MHD_USE_ERROR_LOG;
  // Without a listening socket, connections arrive by MHD_add_connection
  // from another thread: the inter-thread channel wakes the server.
  if (listen_fd < 0) flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
  std::vector<MHD_OptionItem> options;
  if (listen_fd >= 0) options.push_back({MHD_OPTION_LISTEN_SOCKET, listen_fd, nullptr});
  // TLS (GnuTLS, inside libmicrohttpd): the key and certificate as PEM text.
  if (tls) {
    flags |= MHD_USE_TLS;
    options.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(tls->key.Reveal().data())});
    options.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls->cert.c_str())});
  }
  options.push_back({MHD_OPTION_END, 0, nullptr});
  auto idle_seconds = static_cast<unsigned int>(
      std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(limits_.idle_timeout).count()));
  server->daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Exchange::OnRequest, server.get(),                //
      // The logger first, so that every message goes there.
      MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, const_cast<char*>(DoorName(kind)),   //
      MHD_OPTION_NOTIFY_CONNECTION, &Exchange::OnConnection, server.get(),          //
      MHD_OPTION_NOTIFY_COMPLETED, &Exchange::OnCompleted, nullptr,                 //
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,                        //
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(limits_.connections),  //
      MHD_OPTION_CONNECTION_TIMEOUT, idle_seconds,                                  //
      MHD_OPTION_THREAD_POOL_SIZE, 2u,                                              //
      MHD_OPTION_ARRAY, options.data(),                                             //
      MHD_OPTION_END);
  if (!server->daemon) {
    if (listen_fd >= 0) close(listen_fd);
    return Unavailable(std::string("libmicrohttpd could not start the HTTP door (") + DoorName(kind) + ")");
  }
  servers_.push_back(std::move(server));
  return Status::Ok();
}

void HttpDoor::SetBusy(Peer* peer, bool busy) {
  absl::MutexLock lock(&peers_mutex_);
  auto found = peers_.find(peer);
  if (found == peers_.end()) return;
  found->second.busy = busy;
  if (!busy) found->second.answered = true;
}

void HttpDoor::GoAway() {
  closing_ = true;
  // Idle keep-alive connections are closed now, before the listening socket
  // is another process's; the busy ones close after their answer, and a new
  // one after its first. A client whose request crosses the close on the
  // wire sees the connection end: HTTP/1.1 has no way to say "not
  // processed, send it again" for a POST.
  absl::MutexLock lock(&peers_mutex_);
  for (const auto& [peer, state] : peers_) {
    if (!state.busy && state.answered) shutdown(peer->fd, SHUT_RDWR);
  }
}

void HttpDoor::StopAccepting() {
  GoAway();
  for (auto& server : servers_) {
    // No new connections. A TCP port stays ours until the process exits:
    // closed now, another local user could bind it while we drain and
    // receive the next callers' requests. (A Unix socket's file is removed
    // below; the next daemon binds a new one.)
    int fd = MHD_quiesce_daemon(server->daemon);
    if (fd >= 0 && server->kind == DoorKind::kHttpTcp) {
      server->held_fd = fd;
    } else if (fd >= 0) {
      close(fd);
    }
  }
  socket_file_.Remove();
}

void HttpDoor::Stop(std::chrono::system_clock::time_point) {
  for (auto& server : servers_) {
    if (server->daemon) MHD_stop_daemon(server->daemon);
    server->daemon = nullptr;
    if (server->held_fd >= 0) close(server->held_fd);
    server->held_fd = -1;
  }
  servers_.clear();
  where_.clear();
  tunnels_ = nullptr;
  socket_file_.Remove();
}

}  // namespace stormbroker
