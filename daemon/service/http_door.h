// The broker's HTTP door: the Storm API's own paths and shapes, so that a
// client written against the API (curl, liquidweb-cli, the Python, Ruby,
// Perl and Node libraries, Ansible's uri module) goes through the broker with
// one change to its configuration, its base URL.
//
//   POST /VERSION/Group/Sub/method[.json|.yaml]   body {"params": {...}}
//
// on listen.http_socket (a Unix socket) and listen.http (loopback TCP),
// served by libmicrohttpd. Who is calling comes from the kernel, as for gRPC
// (SO_PEERCRED; for TCP, the socket's owner through sock_diag); the calls go
// through the same CallDesk as gRPC calls (policy, audit, the account's
// session and upstream), under the same limits.
//
// The username of the client's Basic credentials names the broker account
// (or the X-Stormbroker-Account header; or, with neither, the only account);
// whatever password the client sends is ignored, never forwarded or logged.
// Account/Auth/token is answered here with a handle that means nothing
// upstream (and the real token's inactivity deadline), and
// Account/Auth/expireToken with success, without touching the real token:
// clients that log in first keep working, and the token never leaves.
//
// Answers: the API's result, or its exception as data, with the upstream's
// status, in the encoding asked for. The broker's own refusals carry an HTTP
// status and a body in the API's error shape: 400 a bad path or body, 403
// not allowed, 404 no such account or version, 413 too large, 429 over a
// limit, 503 the upstream unreachable or the account waiting for a login,
// 504 the upstream too slow.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "access/connection_table.h"
#include "service/call_desk.h"
#include "service/in_flight.h"
#include "service/passed_sockets.h"
#include "secret/secret.h"

struct MHD_Daemon;

namespace stormbroker {

class HttpDoor {
 public:
  HttpDoor(ConnectionTable& connections, CallDesk& desk, const PolicyHolder& policy, const LimitsConfig& limits);
  ~HttpDoor();
  HttpDoor(const HttpDoor&) = delete;
  HttpDoor& operator=(const HttpDoor&) = delete;

  // Serves on listen.http_socket (created with listen.mode and listen.group,
  // as the gRPC socket) and on loopback listen.http (HTTPS with
  // listen.http_tls); either may be left out. A socket systemd passed for a
  // door (`passed`) is served instead of the configured one.
  Status Start(const ListenConfig& listen, const PassedSockets& passed);

  // Shutdown: stops taking connections, answers new requests 503, and waits
  // at most `bound` for the calls in flight; says whether they all ended.
  bool Drain(std::chrono::milliseconds bound);
  // Closes every connection. Call after Drain and after the sessions
  // stopped (which answers the calls still waiting for a token).
  void Stop();

 private:
  struct Server;
  class Exchange;
  friend class Exchange;
  struct Tls {
    std::string cert;  // PEM
    Secret key;        // PEM
  };

  // A connection (or its first request) whose sender the kernel cannot
  // name: audited without a uid (never as the uid an orphaned socket shows).
  void RefuseUnidentified(const std::string& listener, const Status& why);
  // `tls` (may be null) is read while the server starts.
  Status Serve(int listen_fd, const std::string& name, const Tls* tls);

  ConnectionTable& connections_;
  CallDesk& desk_;
  const PolicyHolder& policy_;
  const LimitsConfig limits_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::string socket_path_;  // removed by Stop
  InFlight in_flight_;
};

}  // namespace stormbroker
