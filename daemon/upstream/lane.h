// Whose an upstream request is: what the fair line (fair_line.h) orders
// requests by while they wait for a connection to the API.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace stormbroker {

struct Lane {
  // The account the request is for: it holds at most its max_connections at
  // the API, and waits while the API asked the account to slow down.
  std::string account;
  // Callers share the line by uid, each in proportion to its share (policy).
  uid_t uid = 0;
  uint32_t weight = 1;
  // The account's own keep-alive, login, renewal or expiry: first in line,
  // and sent while the account's callers wait out a pause.
  bool upkeep = false;
  // Set once the caller has gone (its connection ended): a request still in
  // line leaves it unsent. May be null.
  std::shared_ptr<const std::atomic<bool>> abandoned;

  bool Abandoned() const { return abandoned && abandoned->load(std::memory_order_relaxed); }
};

}  // namespace stormbroker
