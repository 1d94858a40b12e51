// The HTTPS proxy door: for clients that hard-code https://api.stormondemand.com
// (Liquid Web's Terraform provider, the Ruby, PHP, Node and Python
// libraries) but honour https_proxy, as nearly every HTTP client does.
//
// On loopback TCP (listen.https_proxy.address) it takes `CONNECT host:443`
// for the configured API hosts only, answers 200, and hands the client's
// socket to the HTTP door's tunnel server (HttpDoor::ServeTunnels), which
// terminates TLS with a leaf of the local CA (local_ca.h) and serves the
// requests inside exactly as listen.http does: the same core, policy,
// audit (listener "https-proxy") and error shapes. The caller is the owner
// of the proxy connection's client socket, named by the kernel, fixed for
// the tunnel's life.
//
// Nothing is ever connected to: CONNECT to any other host or port, and a
// plain proxy request (GET http://...), are refused with 403 and audited.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "broker/broker_core.h"
#include "doors/door.h"
#include "doors/http/http_door.h"
#include "doors/proxy/connect_head.h"

namespace stormbroker {

class ProxyDoor : public Door {
 public:
  ProxyDoor(BrokerCore& core, HttpDoor& http) : core_(core), http_(http) {}
  ~ProxyDoor() override {
    StopAccepting();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  ProxyDoor(const ProxyDoor&) = delete;
  ProxyDoor& operator=(const ProxyDoor&) = delete;

  // Loads (or makes) the CA, mints the hosts' leaf, starts the HTTP door's
  // tunnel server, and listens on `passed` (a socket systemd passed as
  // "https-proxy") or on listen.https_proxy.address. Nothing when neither.
  Status Start(const Config& config, const PassedSockets& passed) override;
  std::string Describe() const override ABSL_LOCKS_EXCLUDED(mutex_);
  // Tunnels already open are the HTTP door's (its GoAway and Stop end
  // them), and a CONNECT not yet answered is ended by StopAccepting.
  void GoAway() override {}
  // Stops taking connections; CONNECTs not yet answered are closed.
  void StopAccepting() override;
  void Stop(std::chrono::system_clock::time_point) override { StopAccepting(); }

  // What clients need to know, once started: where, for which hosts, and
  // the CA to trust. Empty when the door is not serving (not started, or
  // stopped).
  std::optional<HttpsProxyDescription> ForClients() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  // A connection whose CONNECT is being read.
  struct Pending {
    Caller caller;
    std::unique_ptr<ConnectHead> head;
  };

  // One thread: accepts, reads each connection's head as it arrives, and
  // answers or refuses it; no thread per connection, so a connection that
  // sends nothing costs two descriptors (the door's and the connection
  // table's) until limits.first_request_timeout, when the table ends it,
  // within the caller's limits (limits.connections_per_uid), never a thread.
  void Loop(int listen_fd);
  void Accept(int listen_fd);
  // Reads what `fd` sent; answers once its head is complete.
  void Read(int fd);
  void Answer(int fd, Pending& pending);
  // Refuses `fd` with `why` (audited through the core as `decision`) and closes it.
  void Refuse(int fd, Pending& pending, Decision decision, const Status& why);
  // Answers `why` in the core's shape (broker/refusal.h; already audited, or
  // nobody's to audit) and closes `fd`.
  void Reject(int fd, const Status& why);
  // Handling `fd` threw: the core logs and audits it (BrokerCore::Fault);
  // a pending connection gets 500 and is closed.
  void Faulted(int fd, std::string_view what);
  // Forgets `fd` in the core and here, and closes it unless `handed_over`.
  void Drop(int fd, bool handed_over = false);

  BrokerCore& core_;
  HttpDoor& http_;
  std::vector<std::string> hosts_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop wakes the loop
  std::thread loop_;
  std::map<int, Pending> pending_;  // the loop thread's own (asserted in Debug builds)
  std::thread::id loop_thread_;     // set by the loop as it starts
  // Out of descriptors, the loop stops watching the listening socket (which
  // would wake it at once, again and again) until this time; its own.
  std::optional<std::chrono::steady_clock::time_point> accept_paused_until_;
  mutable absl::Mutex mutex_;
  std::optional<HttpsProxyDescription> description_ ABSL_GUARDED_BY(mutex_);  // set once serving
  std::string ca_file_;  // for Describe
  bool stopped_ = false;  // the thread that calls Start and Stop
};

}  // namespace stormbroker
