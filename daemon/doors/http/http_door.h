// The broker's HTTP door: the Storm API's own paths and shapes
// (http_protocol.h), so that a client written against the API (curl,
// liquidweb-cli, the Python, Ruby, Perl and Node libraries, Ansible's uri
// module) goes through the broker with one change to its configuration, its
// base URL. Served by libmicrohttpd on listen.http_socket (a Unix socket)
// and listen.http (loopback TCP, optionally HTTPS).
//
// A translator to the broker's core (broker/broker_core.h), which decides:
// who is calling comes from the kernel (SO_PEERCRED; for TCP, the owner of
// the client's socket through sock_diag, checked again when the
// connection's first request is complete); the account, method and policy
// are decided from the request line and headers, before the body is read,
// so a refused caller's body is never parsed; then the bounded params and
// the core's call. On TCP, the Host must name the door and requests from
// web pages (Origin, Sec-Fetch-Site: cross-site) are refused.
//
// The username of the client's Basic credentials names the broker account
// (or the X-Stormbroker-Account header; or, with neither, the only account);
// whatever password the client sends is ignored, never forwarded or logged.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <absl/synchronization/mutex.h>

#include "broker/broker_core.h"
#include "doors/door.h"
#include "net/passed_sockets.h"
#include "net/unix_socket.h"
#include "secret/secret.h"

struct MHD_Daemon;

namespace stormbroker {

class HttpDoor : public Door {
 public:
  HttpDoor(BrokerCore& core, const LimitsConfig& limits);
  ~HttpDoor() override;
  HttpDoor(const HttpDoor&) = delete;
  HttpDoor& operator=(const HttpDoor&) = delete;

  // Serves on listen.http_socket (created with listen.mode and listen.group,
  // as the gRPC socket) and on loopback listen.http (HTTPS with
  // listen.http_tls); either may be left out. A socket systemd passed for a
  // door (`passed`) is served instead of the configured one.
  Status Start(const Config& config, const PassedSockets& passed) override;
  std::string Describe() const override;

  // Serves HTTPS inside the proxy door's tunnels (doors/proxy/proxy_door.h):
  // no listening socket; each tunnel's client socket, handed over by
  // AdoptTunnel once CONNECT is answered, is served with `leaf` (a
  // certificate for `hosts`, whose names are the Host values accepted).
  // The caller is the owner of that socket, as on listen.http.
  Status ServeTunnels(const std::string& leaf_cert, const Secret& leaf_key, const std::vector<std::string>& hosts);
  // Takes `fd` (a loopback TCP connection whose CONNECT was answered) into
  // the tunnels' server; closed there in any case.
  Status AdoptTunnel(int fd);

  // A restart's first step: closes idle keep-alive connections and answers
  // every request from now on with Connection: close, still accepting.
  void GoAway() override ABSL_LOCKS_EXCLUDED(peers_mutex_);
  // GoAway, and no new connections. Call before BrokerCore::Drain.
  void StopAccepting() override ABSL_LOCKS_EXCLUDED(peers_mutex_);
  // Closes every connection. Call after the drain and after the sessions
  // stopped (which answers the calls still waiting for a token): an HTTP
  // call's deadline is the core's, so `deadline` is not needed here.
  void Stop(std::chrono::system_clock::time_point deadline) override;

 private:
  struct Server;
  struct Peer;
  class Exchange;
  friend class Exchange;
  struct Tls {
    std::string cert;  // PEM
    Secret key;        // PEM
  };

  void SetBusy(Peer* peer, bool busy) ABSL_LOCKS_EXCLUDED(peers_mutex_);
  // YAML bodies are parsed one at a time per uid: yaml-cpp reads about 6 MB
  // a second, so a megabyte holds a door thread for some 160 ms, and a
  // server has two. True: `exchange` parses now (the uid's turn is its).
  // False: it waits, suspended (holding no thread), and is resumed with the
  // turn (EndYamlTurn of the parse before it).
  bool TakeYamlTurn(uid_t uid, Exchange* exchange) ABSL_LOCKS_EXCLUDED(yaml_mutex_);
  // `holder`'s parse ended (or its exchange did): the turn goes to the next
  // exchange waiting. One that never had the turn only leaves the queue.
  void EndYamlTurn(uid_t uid, Exchange* holder) ABSL_LOCKS_EXCLUDED(yaml_mutex_);
  // `tls` (may be null) is read while the server starts. `listen_fd` -1:
  // connections come through AdoptTunnel only.
  Status Serve(int listen_fd, DoorKind door, const Tls* tls, std::vector<std::string> hosts = {});

  BrokerCore& core_;
  const LimitsConfig limits_;
  std::vector<std::unique_ptr<Server>> servers_;
  Server* tunnels_ = nullptr;  // ServeTunnels' server, in servers_
  std::vector<std::string> where_;  // for Describe, as each server starts
  SocketFile socket_file_;  // removed once the door stops accepting
  std::atomic<bool> closing_{false};  // GoAway ran: every answer closes its connection
  absl::Mutex yaml_mutex_;
  // A uid present: one of its YAML bodies is being parsed; the queue: its
  // exchanges waiting for their turn.
  std::map<uid_t, std::deque<Exchange*>> yaml_turns_ ABSL_GUARDED_BY(yaml_mutex_);
  absl::Mutex peers_mutex_;
  // Open connections, and where each stands: a request under way (busy),
  // or none since an answer (a kept-alive connection, which GoAway ends).
  struct PeerState {
    bool busy = false;
    bool answered = false;
  };
  std::map<Peer*, PeerState> peers_ ABSL_GUARDED_BY(peers_mutex_);
};

}  // namespace stormbroker
