// Calls in flight through one door, for a shutdown that lets them finish:
// once Drain begins, Begin refuses new calls, and Drain waits (a bounded
// time) for the count to reach zero.
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
  // Refuses new calls from now on; true once none is in flight, false when
  // `bound` passed first.
  bool Drain(std::chrono::milliseconds bound) ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    draining_ = true;
    return mutex_.AwaitWithTimeout(absl::Condition(+[](int* calls) { return *calls == 0; }, &calls_),
                                   absl::FromChrono(bound));
  }

 private:
  absl::Mutex mutex_;
  int calls_ ABSL_GUARDED_BY(mutex_) = 0;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace stormbroker
