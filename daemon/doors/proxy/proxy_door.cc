#include "doors/proxy/proxy_door.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>

#include <spdlog/spdlog.h>

#include "access/loopback_peer.h"
#include "broker/refusal.h"
#include "doors/proxy/local_ca.h"
#include "net/tcp_socket.h"
#include "util/printable.h"

namespace stormbroker {
namespace {

// The leaf is minted at every start; a year and a month is within what
// clients accept of a server certificate (398 days, the CA/Browser rule).
constexpr auto kLeafValidity = std::chrono::hours(24 * 397);
// Out of descriptors, accepting waits this long before it tries again.
constexpr auto kAcceptPause = std::chrono::milliseconds(500);

// A short answer on a non-blocking socket: it fits the socket's buffer.
void SendAnswer(int fd, std::string_view text) { (void)!send(fd, text.data(), text.size(), MSG_NOSIGNAL); }

}  // namespace

Status ProxyDoor::Start(const Config& config, const PassedSockets& passed_sockets) {
  const ListenConfig& listen = config.listen;
  const std::optional<int>& passed = passed_sockets.https_proxy;
  if (!passed && !listen.https_proxy) return Status::Ok();
  hosts_ = listen.https_proxy_hosts;
  if (passed) listen_fd_ = *passed;  // the door's from here on: closed with it, whatever fails below
  auto ca = LocalCa::LoadOrCreate(listen.proxy_ca_cert_file, listen.proxy_ca_key_file, hosts_);
  if (!ca.ok()) return Unavailable("the HTTPS proxy door's CA: " + ca.status().message());
  auto leaf = ca->MintLeaf(hosts_, kLeafValidity);
  if (!leaf.ok()) return leaf.status();
  if (Status served = http_.ServeTunnels(leaf->cert, leaf->key, hosts_); !served.ok()) return served;
  if (!passed) {
    auto fd = OpenTcpSocket(*listen.https_proxy);
    if (!fd.ok()) return fd.status();
    listen_fd_ = *fd;
    WarnOfRestartGap("the HTTPS proxy door", *listen.https_proxy);
  }
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return Unavailable(std::string("the HTTPS proxy door cannot create its event descriptors: ") + strerror(errno));
  }
  for (int fd : {listen_fd_, wake_fd_}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      return Unavailable(std::string("the HTTPS proxy door cannot watch its sockets: ") + strerror(errno));
    }
  }
  loop_ = std::thread([this, fd = listen_fd_] { Loop(fd); });
  auto bound = BoundAddress(listen_fd_);
  std::string where = bound.ok() ? bound->host + ":" + std::to_string(bound->port) : "the socket systemd passed";
  ca_file_ = listen.proxy_ca_cert_file;
  absl::MutexLock lock(&mutex_);
  description_ = HttpsProxyDescription{where, hosts_, ca->certificate_pem()};
  return Status::Ok();
}

std::optional<HttpsProxyDescription> ProxyDoor::ForClients() const {
  absl::MutexLock lock(&mutex_);
  return description_;
}

std::string ProxyDoor::Describe() const {
  absl::MutexLock lock(&mutex_);
  if (!description_) return "";
  std::string served;
  for (const std::string& host : description_->hosts) served += (served.empty() ? "" : ", ") + host;
  return fmt::format("HTTPS proxy door on {} for {} (CA {})", description_->address, served, ca_file_);
}

void ProxyDoor::Loop(int listen_fd) {
  loop_thread_ = std::this_thread::get_id();
  epoll_event events[64];
  while (true) {
    int ready = epoll_wait(epoll_fd_, events, 64, accept_paused_until_ ? kAcceptPause.count() : -1);
    if (ready < 0 && errno != EINTR) {
      spdlog::critical("the HTTPS proxy door cannot wait for connections: {}; it takes no more", strerror(errno));
      return;
    }
    if (accept_paused_until_ && std::chrono::steady_clock::now() >= *accept_paused_until_) {
      accept_paused_until_.reset();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = listen_fd;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd, &event);
    }
    for (int i = 0; i < ready; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        for (auto& [pending_fd, pending] : pending_) {
          core_.ForgetConnection(pending_fd);
          close(pending_fd);
        }
        pending_.clear();
        return;
      }
      // Nothing one connection's handling throws may end the thread (and
      // with it the daemon): that connection alone fails.
      try {
        if (fd == listen_fd) {
          Accept(listen_fd);
        } else {
          Read(fd);
        }
      } catch (const std::exception& e) {
        Faulted(fd, e.what());
      } catch (...) {
        Faulted(fd, "an exception of unknown type");
      }
    }
  }
}

void ProxyDoor::Accept(int listen_fd) {
  assert(std::this_thread::get_id() == loop_thread_);  // pending_ is the loop's own
  while (true) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
      // The connection waits in the backlog; the listening socket stays
      // readable, so it is left unwatched a moment rather than spun on.
      spdlog::warn("the HTTPS proxy door cannot accept a connection: {}; trying again in {} ms", strerror(errno),
                   kAcceptPause.count());
      accept_paused_until_ = std::chrono::steady_clock::now() + kAcceptPause;
      epoll_event event{};
      event.data.fd = listen_fd;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd, &event);
      return;
    }
    if (fd < 0) return;
    // Who is calling, before anything they send is read; then their place
    // among their connections (limits.connections_per_uid), as on every door.
    Result<Caller> caller = IdentifyLoopbackPeer(fd);
    if (!caller.ok()) {
      core_.RefuseUnidentified(DoorKind::kHttpsProxy, caller.status());
      SendAnswer(fd, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      close(fd);
      continue;
    }
    if (!core_.AdmitConnection(fd, *caller, DoorKind::kHttpsProxy).ok()) {
      SendAnswer(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      close(fd);
      continue;
    }
    // A connection that sends no CONNECT is ended by the connection table
    // at limits.first_request_timeout (its read then sees the end).
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      core_.ForgetConnection(fd);
      close(fd);
      continue;
    }
    pending_[fd] = Pending{std::move(caller).value(), std::make_unique<ConnectHead>()};
  }
}

void ProxyDoor::Read(int fd) {
  assert(std::this_thread::get_id() == loop_thread_);  // pending_ is the loop's own
  auto found = pending_.find(fd);
  if (found == pending_.end()) return;
  Pending& pending = found->second;
  // The head only: peeked, parsed, and then taken off the socket as far as
  // it goes, so the bytes after it stay there for the TLS server.
  char buffer[ConnectHead::kMaxBytes];
  ssize_t peeked = recv(fd, buffer, sizeof buffer, MSG_PEEK);
  if (peeked < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (peeked <= 0) return Drop(fd);  // gone
  auto used = pending.head->Feed({buffer, static_cast<size_t>(peeked)});
  if (!used.ok()) return Refuse(fd, pending, Decision::kInvalid, used.status());
  if (recv(fd, buffer, *used, 0) != static_cast<ssize_t>(*used)) return Drop(fd);
  if (pending.head->complete()) Answer(fd, pending);
}

void ProxyDoor::Answer(int fd, Pending& pending) {
  const ConnectHead& head = *pending.head;
  if (!head.is_connect()) {
    Status why = PermissionDenied(
        "this proxy forwards nothing: it serves the Storm API through CONNECT (https_proxy), not plain requests");
    return Refuse(fd, pending, Decision::kDeny, why);
  }
  auto target = ParseTunnelTarget(head.target());
  if (!target.ok()) return Refuse(fd, pending, Decision::kInvalid, target.status());
  // Where a tunnel may go is the core's to decide (and to audit when not).
  // Nothing is ever connected to: a tunnel ends in the broker, so the
  // broker is no open proxy.
  auto request = core_.Begin(fd, DoorKind::kHttpsProxy, Rpc::kConnect, /*drains=*/false);
  if (!request.ok()) return Reject(fd, request.status());
  if (Status allowed = core_.AdmitTunnel(*request, target->host, target->port); !allowed.ok()) {
    return Reject(fd, allowed);
  }
  SendAnswer(fd, "HTTP/1.1 200 Connection established\r\n\r\n");
  // The HTTP door's tunnel server takes the connection (and admits it
  // again, as its own).
  Drop(fd, /*handed_over=*/true);
  if (Status adopted = http_.AdoptTunnel(fd); !adopted.ok()) spdlog::warn("HTTPS proxy door: {}", adopted.message());
}

void ProxyDoor::Refuse(int fd, Pending& pending, Decision decision, const Status& why) {
  // Audited as any refusal, through the core.
  auto request = core_.Begin(fd, DoorKind::kHttpsProxy, Rpc::kConnect, /*drains=*/false);
  if (request.ok()) {
    request->record().method = "CONNECT " + Printable(pending.head->target());
    core_.Refuse(*request, decision, why);
  }
  Reject(fd, why);
}

void ProxyDoor::Reject(int fd, const Status& why) {
  std::string body = why.message() + "\n";
  RefusalShape shape = ShapeOf(why.code());
  SendAnswer(fd, "HTTP/1.1 " + std::to_string(shape.http_status) + " " + shape.reason +
                     "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n" + body);
  shutdown(fd, SHUT_WR);
  Drop(fd);
}

void ProxyDoor::Faulted(int fd, std::string_view what) {
  auto found = pending_.find(fd);
  core_.Fault(DoorKind::kHttpsProxy, Rpc::kConnect, nullptr,
              found != pending_.end() ? std::optional(found->second.caller) : std::nullopt, what);
  if (found == pending_.end()) return;  // the listening socket: it goes on accepting
  SendAnswer(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  Drop(fd);
}

void ProxyDoor::Drop(int fd, bool handed_over) {
  assert(std::this_thread::get_id() == loop_thread_);  // pending_ is the loop's own
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  core_.ForgetConnection(fd);
  pending_.erase(fd);
  if (!handed_over) close(fd);
}

void ProxyDoor::StopAccepting() {
  if (stopped_) return;
  stopped_ = true;
  if (loop_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    loop_.join();
  }
  // The listening socket stays open (unread) until the door is destroyed:
  // closed while the broker drains, another local user could bind the port.
  for (int fd : {wake_fd_, epoll_fd_}) {
    if (fd >= 0) close(fd);
  }
  wake_fd_ = epoll_fd_ = -1;
  absl::MutexLock lock(&mutex_);
  description_.reset();
}

}  // namespace stormbroker
