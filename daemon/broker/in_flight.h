// Calls in flight, for a shutdown that lets them finish: Drain waits (a
// bounded time) for the count to reach zero, still counting new calls
// meanwhile (the doors have told their clients to go away, so those are
// few, and each is served rather than failed), and from then on Begin
// refuses.
#pragma once

#include <chrono>

#include <absl/synchronization/mutex.h>

namespace stormbroker {

class InFlight {
 public:
  // Counts a call; false when draining (the call must be refused).
  bool Begin() ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    if (draining_) return false;
    ++calls_;
    return true;
  }
  void End() ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    --calls_;
  }
  // True once none is in flight, false when `bound` passed first; new
  // calls are refused from its return on.
  bool Drain(std::chrono::milliseconds bound) ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    bool idle = mutex_.AwaitWithTimeout(absl::Condition(+[](int* calls) { return *calls == 0; }, &calls_),
                                        absl::FromChrono(bound));
    draining_ = true;
    return idle;
  }

 private:
  absl::Mutex mutex_;
  int calls_ ABSL_GUARDED_BY(mutex_) = 0;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace stormbroker
