#include "upstream/warm_keeper.h"

#include <algorithm>

namespace stormbroker {
namespace {

using std::chrono::milliseconds;

int64_t Nanos(Scheduler::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// A ping this long before the API's stated timeout reaches it in time at
// any distance the API is used from (or half the timeout, when shorter).
constexpr milliseconds kMargin{1000};

}  // namespace

WarmKeeper::WarmKeeper(Options options, Scheduler& scheduler, Ping ping)
    : options_(options), scheduler_(scheduler), ping_(std::move(ping)) {}

WarmKeeper::~WarmKeeper() {
  absl::MutexLock lock(&mutex_);
  stopped_ = true;
  if (timer_) scheduler_.Cancel(timer_);
}

milliseconds WarmKeeper::Interval() const {
  milliseconds stated(stated_timeout_ms_.load(std::memory_order_relaxed));
  if (stated.count() == 0) return options_.interval;
  return stated - std::min(kMargin, stated / 2);
}

void WarmKeeper::Answered(const Lane& lane, const HttpResponse& response) {
  if (!connected_.load(std::memory_order_relaxed)) connected_.store(true);
  if (response.keep_alive_timeout) {
    stated_timeout_ms_.store(std::chrono::duration_cast<milliseconds>(*response.keep_alive_timeout).count(),
                             std::memory_order_relaxed);
  }
  if (lane.warming || lane.upkeep) return;
  auto now = scheduler_.Now();
  last_call_ns_.store(Nanos(now), std::memory_order_release);
  // The first call after a quiet spell starts the rounds again.
  if (!armed_.exchange(true)) Arm(now + Interval());
}

void WarmKeeper::Arm(Scheduler::Clock::time_point when) {
  absl::MutexLock lock(&mutex_);
  if (stopped_) return;
  timer_ = scheduler_.RunAt(when, [this] { Round(); });
}

void WarmKeeper::Round() {
  auto now = scheduler_.Now();
  auto quiet = std::chrono::nanoseconds(Nanos(now) - last_call_ns_.load(std::memory_order_acquire));
  if (quiet > options_.warm_for) {
    // Cold: no round until the next call. A call that lands between the
    // check and the flag's reset arms the next round itself.
    armed_.store(false);
    quiet = std::chrono::nanoseconds(Nanos(scheduler_.Now()) - last_call_ns_.load(std::memory_order_acquire));
    if (quiet <= options_.warm_for && !armed_.exchange(true)) Arm(now + Interval());
    return;
  }
  for (size_t i = 0; i < options_.connections; ++i) ping_();
  pings_ += options_.connections;
  Arm(now + Interval());
}

}  // namespace stormbroker
