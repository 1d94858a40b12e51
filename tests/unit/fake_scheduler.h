// A Scheduler whose time moves only when a test says so.
#pragma once

#include <map>

#include "runtime/scheduler.h"

namespace stormbroker::testing {

class FakeScheduler : public Scheduler {
 public:
  Clock::time_point Now() const override { return now_; }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)) + (now_ - Clock::time_point());
  }
  TaskId RunAt(Clock::time_point when, std::function<void()> task) override {
    TaskId id = next_id_++;
    tasks_.emplace(std::make_pair(when, id), std::move(task));
    return id;
  }
  void Cancel(TaskId id) override {
    for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
      if (it->first.second == id) {
        tasks_.erase(it);
        return;
      }
    }
  }
  // Moves time forward by `by`, running every task that falls due, in order.
  void Advance(Clock::duration by) {
    Clock::time_point end = now_ + by;
    while (!tasks_.empty() && tasks_.begin()->first.first <= end) {
      auto first = tasks_.begin();
      now_ = std::max(now_, first->first.first);
      auto task = std::move(first->second);
      tasks_.erase(first);
      task();
    }
    now_ = end;
  }
  // When the next task is due, if any.
  std::optional<Clock::time_point> NextDue() const {
    if (tasks_.empty()) return std::nullopt;
    return tasks_.begin()->first.first;
  }

 private:
  Clock::time_point now_ = Clock::time_point() + std::chrono::hours(1000);
  TaskId next_id_ = 1;
  std::map<std::pair<Clock::time_point, TaskId>, std::function<void()>> tasks_;
};

}  // namespace stormbroker::testing
