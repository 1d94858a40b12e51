#include "doors/proxy/proxy_door.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "access/loopback_peer.h"
#include "doors/proxy/connect_head.h"
#include "doors/proxy/local_ca.h"
#include "net/tcp_socket.h"

namespace stormbroker {
namespace {

// The leaf is minted at every start; a year and a month is within what
// clients accept of a server certificate (398 days, the CA/Browser rule).
constexpr auto kLeafValidity = std::chrono::hours(24 * 397);
// A client has this long to send its CONNECT; a connection that sends
// nothing holds a thread no longer.
constexpr int kHeadTimeoutSeconds = 10;
// CONNECTs read at once (more are answered 503), and of those, from one uid:
// a user who opens connections and sends nothing holds a handful of
// threads for the timeout, never the door.
constexpr size_t kMaxHandshakes = 64;
constexpr int kMaxHandshakesPerUid = 8;

const char* Reason(int status) {
  switch (status) {
    case 200: return "Connection established";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    default: return "Service Unavailable";
  }
}

void SetTimeouts(int fd, int seconds) {
  timeval timeout{seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

bool SendAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t sent = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (sent <= 0) return false;
    text.remove_prefix(sent);
  }
  return true;
}

}  // namespace

Status ProxyDoor::Start(const ListenConfig& listen, std::optional<int> passed) {
  if (!passed && !listen.https_proxy) return Status::Ok();
  hosts_ = listen.https_proxy_hosts;
  auto ca = LocalCa::LoadOrCreate(listen.proxy_ca_cert_file, listen.proxy_ca_key_file, hosts_);
  if (!ca.ok()) {
    if (passed) close(*passed);
    return Unavailable("the HTTPS proxy door's CA: " + ca.status().message());
  }
  auto leaf = ca->MintLeaf(hosts_, kLeafValidity);
  if (!leaf.ok()) return leaf.status();
  if (Status served = http_.ServeTunnels(leaf->cert, leaf->key, hosts_); !served.ok()) return served;
  if (passed) {
    listen_fd_ = *passed;
  } else {
    auto fd = OpenTcpSocket(*listen.https_proxy);
    if (!fd.ok()) return fd.status();
    listen_fd_ = *fd;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  acceptor_ = std::thread([this, fd = listen_fd_] { AcceptLoop(fd); });
  auto bound = BoundAddress(listen_fd_);
  std::string where = bound.ok() ? bound->host + ":" + std::to_string(bound->port) : "the socket systemd passed";
  std::string served;
  for (const std::string& host : hosts_) served += (served.empty() ? "" : ", ") + host;
  spdlog::info("HTTPS proxy door on {} for {} (CA {})", where, served, listen.proxy_ca_cert_file);
  absl::MutexLock lock(&mutex_);
  description_ = Description{where, hosts_, ca->certificate_pem()};
  return Status::Ok();
}

std::optional<ProxyDoor::Description> ProxyDoor::Describe() const {
  absl::MutexLock lock(&mutex_);
  return description_;
}

void ProxyDoor::AcceptLoop(int listen_fd) {
  pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (!Enter(fd)) {
      // Over the bound (or stopping): a client retries a refused proxy
      // connection more readily than it waits for a silent one.
      SendAll(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      close(fd);
      continue;
    }
    std::thread([this, fd] {
      Handshake(fd);
      Leave(fd);
    }).detach();
  }
}

bool ProxyDoor::Enter(int fd) {
  absl::MutexLock lock(&mutex_);
  if (stopping_ || handshakes_.size() >= kMaxHandshakes) return false;
  handshakes_.insert(fd);
  return true;
}

void ProxyDoor::Leave(int fd) {
  absl::MutexLock lock(&mutex_);
  handshakes_.erase(handshakes_.find(fd));
}

void ProxyDoor::Handshake(int fd) {
  SetTimeouts(fd, kHeadTimeoutSeconds);
  // Who is calling, before anything they send is read.
  Result<Caller> caller = IdentifyLoopbackPeer(fd);
  if (!caller.ok()) {
    core_.RefuseUnidentified(Door::kHttpsProxy, caller.status());
    return Refuse(fd, std::nullopt, 403, Decision::kDeny, caller.status(), "");
  }
  bool within;
  {
    absl::MutexLock lock(&mutex_);
    within = ++handshakes_by_uid_[caller->uid] <= kMaxHandshakesPerUid;
  }
  if (within) {
    ReadConnect(fd, *caller);
  } else {
    Refuse(fd, *caller, 503, Decision::kLimit,
           ResourceExhausted("too many proxy connections of this user are waiting to send CONNECT"), "");
  }
  absl::MutexLock lock(&mutex_);
  if (--handshakes_by_uid_[caller->uid] == 0) handshakes_by_uid_.erase(caller->uid);
}

void ProxyDoor::ReadConnect(int fd, const Caller& caller) {
  // The head only: peeked, parsed, and then taken off the socket as far as
  // it goes, so the bytes after it stay there for the TLS server.
  ConnectHead head;
  char buffer[ConnectHead::kMaxBytes];
  while (!head.complete()) {
    ssize_t peeked = recv(fd, buffer, sizeof buffer, MSG_PEEK);
    if (peeked <= 0) {
      close(fd);  // gone, or silent past the timeout
      return;
    }
    auto used = head.Feed({buffer, static_cast<size_t>(peeked)});
    if (!used.ok()) return Refuse(fd, caller, 400, Decision::kInvalid, used.status(), head.target());
    if (recv(fd, buffer, *used, 0) != static_cast<ssize_t>(*used)) {
      close(fd);
      return;
    }
  }
  if (!head.is_connect()) {
    Status why = PermissionDenied(
        "this proxy forwards nothing: it serves the Storm API through CONNECT (https_proxy), not plain requests");
    return Refuse(fd, caller, 403, Decision::kDeny, why, head.target());
  }
  auto target = ParseTunnelTarget(head.target());
  if (!target.ok()) return Refuse(fd, caller, 400, Decision::kInvalid, target.status(), head.target());
  if (Status allowed = CheckTunnelTarget(*target, hosts_); !allowed.ok()) {
    return Refuse(fd, caller, 403, Decision::kDeny, allowed, head.target());
  }
  if (!SendAll(fd, "HTTP/1.1 200 Connection established\r\n\r\n")) {
    close(fd);
    return;
  }
  SetTimeouts(fd, 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (Status adopted = http_.AdoptTunnel(fd); !adopted.ok()) spdlog::warn("HTTPS proxy door: {}", adopted.message());
}

void ProxyDoor::Refuse(int fd, const std::optional<Caller>& caller, int status, Decision decision, const Status& why,
                       const std::string& target) {
  // Audited as any refusal: through the core, on a connection it knows for
  // the moment.
  if (caller && core_.AdmitConnection(fd, *caller, Door::kHttpsProxy).ok()) {
    auto request = core_.Begin(fd, Door::kHttpsProxy, Rpc::kConnect, /*drains=*/false);
    if (request.ok()) {
      request->record().method = "CONNECT " + target;
      core_.Refuse(*request, decision, why);
    }
    core_.ForgetConnection(fd);
  }
  std::string body = why.message() + "\n";
  SendAll(fd, "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
                  "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n\r\n" + body);
  // The client may still be sending: read what it sends (briefly) before
  // closing, so that the answer is not lost to a reset.
  shutdown(fd, SHUT_WR);
  SetTimeouts(fd, 1);
  char discard[4096];
  for (int i = 0; i < 16 && recv(fd, discard, sizeof discard, 0) > 0; ++i) {
  }
  close(fd);
}

void ProxyDoor::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
  // CONNECTs still being read end now; their threads leave at once.
  absl::MutexLock lock(&mutex_);
  for (int fd : handshakes_) shutdown(fd, SHUT_RDWR);
  mutex_.Await(absl::Condition(
      +[](std::multiset<int>* handshakes) { return handshakes->empty(); }, &handshakes_));
}

}  // namespace stormbroker
