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

#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "broker/broker_core.h"
#include "doors/http/http_door.h"

namespace stormbroker {

class ProxyDoor {
 public:
  ProxyDoor(BrokerCore& core, HttpDoor& http) : core_(core), http_(http) {}
  ~ProxyDoor() { Stop(); }
  ProxyDoor(const ProxyDoor&) = delete;
  ProxyDoor& operator=(const ProxyDoor&) = delete;

  // Loads (or makes) the CA, mints the hosts' leaf, starts the HTTP door's
  // tunnel server, and listens on `passed` (a socket systemd passed as
  // "https-proxy") or on listen.https_proxy.address. Nothing when neither.
  Status Start(const ListenConfig& listen, std::optional<int> passed);

  // What clients need to know, once started: where, for which hosts, and
  // the CA to trust. Empty when the door is not serving.
  struct Description {
    std::string address;
    std::vector<std::string> hosts;
    std::string ca_certificate;  // PEM
  };
  std::optional<Description> Describe() const ABSL_LOCKS_EXCLUDED(mutex_);

  // Stops taking connections; CONNECTs not yet answered are closed.
  // Tunnels already open are the HTTP door's (GoAway, Stop).
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  void AcceptLoop(int listen_fd);
  // One connection until its CONNECT is answered (and handed over) or
  // refused; on a thread of its own, bounded by a timeout.
  void Handshake(int fd) ABSL_LOCKS_EXCLUDED(mutex_);
  // Reads the CONNECT of `caller` on `fd`, and answers it or refuses it.
  void ReadConnect(int fd, const Caller& caller);
  // Answers `status` with `why` (audited through the core for `caller`,
  // as the decision `decision`) and closes `fd`.
  void Refuse(int fd, const std::optional<Caller>& caller, int status, Decision decision, const Status& why,
              const std::string& target);
  bool Enter(int fd) ABSL_LOCKS_EXCLUDED(mutex_);
  void Leave(int fd) ABSL_LOCKS_EXCLUDED(mutex_);

  BrokerCore& core_;
  HttpDoor& http_;
  std::vector<std::string> hosts_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop wakes the accept loop
  std::thread acceptor_;
  mutable absl::Mutex mutex_;
  std::optional<Description> description_ ABSL_GUARDED_BY(mutex_);  // set once serving
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::map<uid_t, int> handshakes_by_uid_ ABSL_GUARDED_BY(mutex_);
  std::multiset<int> handshakes_ ABSL_GUARDED_BY(mutex_);  // connections whose CONNECT is not answered yet (an fd may be closed and reused before it leaves)
};

}  // namespace stormbroker
