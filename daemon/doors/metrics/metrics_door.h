// The metrics door: GET /metrics on metrics.listen (loopback TCP,
// libmicrohttpd, one thread), for Prometheus. A door like the others: the
// kernel names each caller (the owner of the client's loopback socket), the
// core admits the connection within the caller's limits
// (limits.connections_per_uid, first_request_timeout) and decides who may
// read (a policy rule with metrics: true; the others get 403, audited).
// The metrics name every account and method in use, hence the rule.
#pragma once

#include <string>

#include "broker/broker_core.h"
#include "config/config.h"
#include "doors/door.h"
#include "util/status.h"

struct MHD_Daemon;

namespace stormbroker {

class MetricsDoor : public Door {
 public:
  explicit MetricsDoor(BrokerCore& core) : core_(core) {}
  ~MetricsDoor() override { Stop({}); }
  MetricsDoor(const MetricsDoor&) = delete;
  MetricsDoor& operator=(const MetricsDoor&) = delete;

  // Listens on metrics.listen (nothing when it names none); UNAVAILABLE
  // when the port cannot be had. systemd passes it no socket.
  Status Start(const Config& config, const PassedSockets& passed) override;
  std::string Describe() const override { return where_; }
  // A scrape is one short request and no call: a draining broker answers
  // scrapes until Stop, so the last one counts its last calls.
  void GoAway() override {}
  void StopAccepting() override {}
  void Stop(std::chrono::system_clock::time_point deadline) override;

 private:
  class Scrape;  // libmicrohttpd's callbacks

  BrokerCore& core_;
  MHD_Daemon* daemon_ = nullptr;
  std::string where_;  // once serving
};

}  // namespace stormbroker
