// Time for the token logic: what time it is, and "run this later". An
// interface so that unit tests drive time by hand instead of sleeping.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

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

// The real scheduler: one thread sleeping until the next task is due.
class ThreadScheduler : public Scheduler {
 public:
  ThreadScheduler();
  ~ThreadScheduler() override;  // stops; pending tasks are dropped

  Clock::time_point Now() const override { return Clock::now(); }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
  TaskId RunAt(Clock::time_point when, std::function<void()> task) override;
  void Cancel(TaskId id) override;
  void Stop();

 private:
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  TaskId next_id_ = 1;
  // Ordered by (due time, id): ids grow, so equal times keep their order.
  std::map<std::pair<Clock::time_point, TaskId>, std::function<void()>> tasks_;
  std::thread thread_;
};

}  // namespace stormbroker
