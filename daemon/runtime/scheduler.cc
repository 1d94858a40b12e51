#include "runtime/scheduler.h"

#include <absl/synchronization/mutex.h>
namespace stormbroker {

ThreadScheduler::ThreadScheduler() : thread_([this] { Loop(); }) {}

ThreadScheduler::~ThreadScheduler() { Stop(); }

void ThreadScheduler::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    tasks_.clear();
  }
  wake_.SignalAll();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

Scheduler::TaskId ThreadScheduler::RunAt(Clock::time_point when, std::function<void()> task) {
  absl::MutexLock lock(&mutex_);
  TaskId id = next_id_++;
  if (stopping_) return id;
  tasks_.emplace(std::make_pair(when, id), std::move(task));
  wake_.SignalAll();
  return id;
}

void ThreadScheduler::Cancel(TaskId id) {
  absl::MutexLock lock(&mutex_);
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    if (it->first.second == id) {
      tasks_.erase(it);
      return;
    }
  }
}

void ThreadScheduler::Loop() {
  absl::MutexLock lock(&mutex_);
  while (!stopping_) {
    if (tasks_.empty()) {
      wake_.Wait(&mutex_);
      continue;
    }
    auto first = tasks_.begin();
    // A copy: Cancel may erase the node while we wait.
    const Clock::time_point due = first->first.first;
    if (auto now = Clock::now(); due > now) {
      wake_.WaitWithTimeout(&mutex_, absl::FromChrono(due - now));
      continue;
    }
    std::function<void()> task = std::move(first->second);
    tasks_.erase(first);
    mutex_.Unlock();
    task();
    mutex_.Lock();
  }
}

}  // namespace stormbroker
