// Time for the token logic: what time it is, and "run this later". An
// interface so that unit tests drive time by hand instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <absl/synchronization/mutex.h>

namespace stormbroker {

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  using TaskId = uint64_t;

  virtual ~Scheduler() = default;
  virtual Clock::time_point Now() const = 0;
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
  // Runs `task` once at or after `when`, on the scheduler's own thread (so it
  // must not block). Tasks due at the same time run in the order scheduled.
  virtual TaskId RunAt(Clock::time_point when, std::function<void()> task) = 0;
  // A task not yet started never runs; one already running is not waited for.
  virtual void Cancel(TaskId id) = 0;
};

// Whole seconds since the epoch, as the Storm API and the state file count.
inline int64_t EpochSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The real scheduler: one thread sleeping until the next task is due.
class ThreadScheduler : public Scheduler {
 public:
  ThreadScheduler();
  ~ThreadScheduler() override;  // stops; pending tasks are dropped

  Clock::time_point Now() const override { return Clock::now(); }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
  TaskId RunAt(Clock::time_point when, std::function<void()> task) override ABSL_LOCKS_EXCLUDED(mutex_);
  void Cancel(TaskId id) override ABSL_LOCKS_EXCLUDED(mutex_);
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mutex_);

  absl::Mutex mutex_;
  absl::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  TaskId next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  // Ordered by (due time, id): ids grow, so equal times keep their order.
  std::map<std::pair<Clock::time_point, TaskId>, std::function<void()>> tasks_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace stormbroker
