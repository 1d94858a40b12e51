// Whose an upstream request is: what the fair line (fair_line.h) orders
// requests by while they wait for a connection to the API.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

namespace stormbroker {

struct Lane {
  // The account the request is for: it holds at most its max_connections at
  // the API, and waits while the API asked the account to slow down.
  std::string account;
  // Callers share the line by uid, each in proportion to its share (policy).
  uid_t uid = 0;
  uint32_t share = 1;
  // The account's own keep-alive, login, renewal or expiry: first in line,
  // and sent while the account's callers wait out a pause.
  bool upkeep = false;
  // A keep-warm ping (upstream/warm_keeper.h): no caller's call, so it
  // keeps nothing warm longer.
  bool warming = false;
  // True once the caller has given up (its connection ended, it cancelled
  // the call): a request still in line leaves it unsent. Asked on the
  // engine's thread while the request waits, so it must be cheap and must
  // not block. May be empty (never gives up).
  std::function<bool()> abandoned;
  // Asked once, on the engine's thread, when the line lets the request go
  // and just before it is sent: false leaves it unsent, as if abandoned.
  // One shared call waits in several callers' lanes at once and is sent by
  // whichever is served first (broker/broker_core.cc). May be empty.
  std::function<bool()> starting;

  bool Abandoned() const { return abandoned && abandoned(); }
  bool Starts() const { return !starting || starting(); }
};

}  // namespace stormbroker
