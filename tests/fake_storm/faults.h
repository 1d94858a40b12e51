// Faults the emulator injects on command, for the next N matching calls or
// for a window of time.
#pragma once

#include <chrono>
#include <absl/synchronization/mutex.h>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fake_storm {

enum class FaultKind {
  kDelay,        // answer normally, after delay_ms
  kStatus500,    // HTTP 500 with an API::Internal exception
  kMaintenance,  // HTTP 503 with an API::Maintenance exception
  kRateLimit,    // HTTP 429 with an API::RateLimit exception
  kReset,        // drop the connection without a complete response
  kRejectToken,  // HTTP 401 (Authorization) for calls made with `token`
};

struct Fault {
  FaultKind kind;
  std::string method;  // lower-case method path; empty: any
  std::string token;   // kRejectToken: the token to refuse; empty: every token
  long long count = 1;  // how many calls it hits; 0 with a window: all calls in it
  std::optional<std::chrono::steady_clock::time_point> until;
  long long delay_ms = 0;
  // rate_limit, maintenance: answer with Retry-After (seconds; as an HTTP
  // date when retry_after_date).
  std::optional<long long> retry_after;
  bool retry_after_date = false;
};

// Parses a control request such as {"kind": "status500", "count": 2,
// "method": "utilities/info/ping"}, {"kind": "delay", "delay_ms": 500,
// "seconds": 10} or {"kind": "rate_limit", "retry_after": 2}. On error returns nothing and says why in `error`.
std::optional<Fault> ParseFault(const nlohmann::json& spec, std::string* error);

class FaultPlan {
 public:
  void Add(Fault fault);
  void Clear();
  // The newest fault that matches this call, used up by one.
  std::optional<Fault> Take(const std::string& method, const std::string& token);
  nlohmann::json Describe() const;

 private:
  mutable absl::Mutex mutex_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mutex_);
};

const char* FaultKindName(FaultKind kind);

}  // namespace fake_storm
