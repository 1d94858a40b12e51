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

#include <memory>
#include <string>
#include <vector>

#include "broker/broker_core.h"
#include "net/passed_sockets.h"
#include "secret/secret.h"

struct MHD_Daemon;

namespace stormbroker {

class HttpDoor {
 public:
  HttpDoor(BrokerCore& core, ConnectionTable& connections, const LimitsConfig& limits);
  ~HttpDoor();
  HttpDoor(const HttpDoor&) = delete;
  HttpDoor& operator=(const HttpDoor&) = delete;

  // Serves on listen.http_socket (created with listen.mode and listen.group,
  // as the gRPC socket) and on loopback listen.http (HTTPS with
  // listen.http_tls); either may be left out. A socket systemd passed for a
  // door (`passed`) is served instead of the configured one.
  Status Start(const ListenConfig& listen, const PassedSockets& passed);

  // Shutdown: stops taking connections (the core refuses new calls while it
  // drains). Call before BrokerCore::Drain.
  void StopAccepting();
  // Closes every connection. Call after the drain and after the sessions
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

  // `tls` (may be null) is read while the server starts.
  Status Serve(int listen_fd, Door door, const Tls* tls);

  BrokerCore& core_;
  ConnectionTable& connections_;  // for request bodies' bytes
  const LimitsConfig limits_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::string socket_path_;  // removed by Stop
};

}  // namespace stormbroker
