// One request inside the broker's core (broker_core.h), whichever door it
// came through: who asked, its place among the caller's calls and in the
// drain count, and its audit record.
#pragma once

#include <memory>

#include "access/connection_table.h"
#include "broker/in_flight.h"
#include "observe/audit_log.h"

namespace stormbroker {

// The door a request came through: the audit trail's "listener".
enum class DoorKind { kGrpc, kHttpUnix, kHttpTcp, kHttpsProxy, kMetrics };
// "grpc", "http-unix", "http-tcp", "https-proxy", "metrics".
const char* DoorName(DoorKind door);

// What a request asks the broker for, as the audit trail names it.
enum class Rpc {
  kConnect, kCall, kListAccounts, kLogin, kLogout, kGetToken, kGetStatus, kGetMetrics, kWatchAccounts, kHealth,
};
// "connect", "Call", "ListAccounts", ...: the gRPC method's name where there is one.
const char* RpcName(Rpc rpc);

// A request from its admission (BrokerCore::Begin) until it is dropped:
// its place among the caller's calls and in the drain count are given back
// then. Its audit record is written once, when the core concludes it.
// Move-only.
class Request {
 public:
  Request(DoorKind door, std::shared_ptr<const CallTicket> ticket, InFlight* drains, AuditRecord record)
      : door_(door), ticket_(std::move(ticket)), drains_(drains), record_(std::move(record)) {}
  Request(Request&& other) noexcept
      : door_(other.door_),
        ticket_(std::move(other.ticket_)),
        drains_(std::exchange(other.drains_, nullptr)),
        record_(std::move(other.record_)),
        concluded_(other.concluded_),
        browser_checked_(other.browser_checked_) {}
  Request& operator=(Request&&) = delete;
  ~Request() {
    if (drains_) drains_->End();
  }

  DoorKind door() const { return door_; }
  const Caller& caller() const { return ticket_->caller(); }
  // The place among the caller's calls, for a stream that holds it as long
  // as it is open (a watch).
  const std::shared_ptr<const CallTicket>& ticket() const { return ticket_; }
  AuditRecord& record() { return record_; }
  // Audited already: nothing more is written for it.
  bool concluded() const { return concluded_; }
  void set_concluded() { concluded_ = true; }

 private:
  friend class BrokerCore;  // marks the browser check done

  DoorKind door_;
  std::shared_ptr<const CallTicket> ticket_;
  InFlight* drains_;  // counted for the drain, when set
  AuditRecord record_;
  bool concluded_ = false;
  bool browser_checked_ = false;  // BrokerCore::AdmitFromLoopbackTcp let it through
};

}  // namespace stormbroker
