// upstream.keep_warm: connections to the API kept open between sporadic
// calls. The API closes a connection idle for its keep-alive timeout
// (Apache's default: 5 s), so a job that calls now and then pays a TCP and
// TLS handshake, several round trips, on every call. The keeper sends the
// cheapest call the API allows (Utilities/Info/ping, authenticated) on
// `connections` connections at once, just before that timeout, for
// `warm_for` after the last caller's call; then it stops until the next
// call. It never pings more often than the interval: the timeout the API
// states (Keep-Alive: timeout=N) less a margin, or the configured interval
// when it states none.
//
// Off by default: every ping is a call the account's API quota sees, and
// only callers who call sporadically gain from it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

#include <absl/synchronization/mutex.h>

#include "runtime/scheduler.h"
#include "upstream/http_engine.h"

namespace stormbroker {

class WarmKeeper {
 public:
  struct Options {
    size_t connections = 1;
    std::chrono::milliseconds warm_for{600'000};
    std::chrono::milliseconds interval{4'000};  // when the API states no keep-alive timeout
  };
  // Sends one ping, whose lane says `warming` (any account that holds a
  // token will do); called `connections` times at once on the scheduler's
  // thread, so it must not block.
  using Ping = std::function<void()>;

  WarmKeeper(Options options, Scheduler& scheduler, Ping ping);
  // No round starts after it returns; one already running is not waited
  // for (the scheduler's rule), so destroy it once the scheduler stopped.
  ~WarmKeeper();
  WarmKeeper(const WarmKeeper&) = delete;
  WarmKeeper& operator=(const WarmKeeper&) = delete;

  // An answer of the API (HttpEngine's answer watcher): a caller's call
  // starts or extends `warm_for`; any answer may state the keep-alive
  // timeout. Quick: it runs under the engine's lock (on its thread, or on a
  // submitting thread that found the engine idle). Atomics only, except
  // the first call after a quiet spell, which takes mutex_ and the
  // scheduler's lock to set the next round (HttpEngine -> WarmKeeper ->
  // scheduler in the lock order).
  void Answered(const Lane& lane, const HttpResponse& response);

  // Whether the API has answered anything yet: a connection is open.
  bool connected() const { return connected_.load(); }
  // Pings sent since the start (for the metrics).
  uint64_t pings() const { return pings_.load(); }
  // How often pings go now.
  std::chrono::milliseconds Interval() const;

 private:
  void Arm(Scheduler::Clock::time_point when) ABSL_LOCKS_EXCLUDED(mutex_);
  void Round();

  const Options options_;
  Scheduler& scheduler_;
  const Ping ping_;
  std::atomic<int64_t> last_call_ns_{0};  // the scheduler's clock, since its epoch
  std::atomic<int64_t> stated_timeout_ms_{0};  // 0: the API said none
  std::atomic<bool> armed_{false};  // a round is scheduled
  std::atomic<uint64_t> pings_{0};
  std::atomic<bool> connected_{false};
  absl::Mutex mutex_;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  Scheduler::TaskId timer_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace stormbroker
