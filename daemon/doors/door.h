// What every door is to the wiring (daemon.cc), and what the doors tell one
// another through it, so that no door includes another.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "net/passed_sockets.h"
#include "util/status.h"

namespace stormbroker {

// A door's life, the same for each: the wiring starts them in turn, and on
// a restart or shutdown asks all of them to send their clients away, stop
// accepting, and stop. Each call but Start may come more than once, and
// before Start (when an earlier door failed to start): then it does nothing.
class Door {
 public:
  virtual ~Door() = default;

  // Serves where `config` says, or on the socket systemd passed for this
  // door (`passed`). OK and nothing when the config names no address.
  virtual Status Start(const Config& config, const PassedSockets& passed) = 0;
  // Where it serves, for the log: empty when it is not serving.
  virtual std::string Describe() const = 0;
  // Clients of open connections are asked to leave (gRPC's GOAWAY, HTTP's
  // Connection: close); new connections are still accepted and served.
  virtual void GoAway() = 0;
  // No new connections (the metrics door, which takes no calls, answers
  // scrapes until Stop). A TCP port stays the door's until Stop, so that
  // nobody else can take it meanwhile; a socket systemd passed stays in its
  // hands, where new callers wait for the next process.
  virtual void StopAccepting() = 0;
  // Ends every connection, cutting calls still in flight at `deadline`, and
  // returns once the door's threads are gone. The wiring stops a door after
  // the core has drained, but for the gRPC door, whose server waits for
  // its own calls: it is stopped beside the drain.
  virtual void Stop(std::chrono::system_clock::time_point deadline) = 0;
};

// Where the proxy door listens, for which hosts, and the CA its clients trust.
struct HttpsProxyDescription {
  std::string address;
  std::vector<std::string> hosts;
  std::string ca_certificate;  // PEM
};

// The proxy door's description now, which the gRPC door's GetStatus reports
// to clients (stormctl env); nothing when it is not serving.
using DescribeHttpsProxy = std::function<std::optional<HttpsProxyDescription>()>;

}  // namespace stormbroker
