#include "tokens/scheduler.h"

namespace stormbroker {

ThreadScheduler::ThreadScheduler() : thread_([this] { Loop(); }) {}

ThreadScheduler::~ThreadScheduler() { Stop(); }

void ThreadScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    tasks_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

Scheduler::TaskId ThreadScheduler::RunAt(Clock::time_point when, std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mutex_);
  TaskId id = next_id_++;
  if (stopping_) return id;
  tasks_.emplace(std::make_pair(when, id), std::move(task));
  wake_.notify_all();
  return id;
}

void ThreadScheduler::Cancel(TaskId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    if (it->first.second == id) {
      tasks_.erase(it);
      return;
    }
  }
}

void ThreadScheduler::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (tasks_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto first = tasks_.begin();
    // A copy: Cancel may erase the node while we wait.
    const Clock::time_point due = first->first.first;
    if (due > Clock::now()) {
      wake_.wait_until(lock, due);
      continue;
    }
    std::function<void()> task = std::move(first->second);
    tasks_.erase(first);
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace stormbroker
