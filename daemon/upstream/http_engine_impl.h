// HttpEngine's inside, shared by its two halves and by nothing else:
// http_engine.cc drives libcurl (the event loop: sockets, timers, the queue
// from busy moments, finished transfers) and http_engine_line.cc decides
// what is sent when (the fair line, pauses the API asked for, callers who
// left or ran out of time, the loads reported).
//
// libcurl's multi_socket interface is driven from two sides under one
// mutex: Submit() on an idle engine adds the transfer and lets libcurl send
// the request at once, on the caller's thread; the engine thread sleeps in
// epoll_wait (without the mutex) on libcurl's sockets and a timerfd for
// libcurl's timeouts, and drives the replies. While the engine is busy (the
// mutex taken), Submit hands the transfer over through a queue and the
// engine thread, awake anyway, sends it. epoll_ctl and timerfd_settime take
// effect in a running epoll_wait, which is what lets a submitting thread
// change what the engine waits for.
//
// At most Options::max_connections transfers are in libcurl's hands at
// once, one per connection (HTTP/1.1); the rest wait in line, where a
// waiting call costs a few hundred bytes instead of a libcurl handle with
// its buffers. Finished easy handles are kept and reused: creating one per
// call costs more than the call. Connections live in the multi handle.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <absl/synchronization/mutex.h>

#include "upstream/fair_line.h"
#include "upstream/http_engine.h"
#include "upstream/transfer.h"

namespace stormbroker {

using SteadyClock = std::chrono::steady_clock;

// A callback owed to a caller, run once the engine's lock is released.
struct Completion {
  HttpCallback done;
  Result<HttpResponse> outcome;
};
using Completions = std::vector<Completion>;

inline void RunAll(Completions& completions) {
  for (auto& completion : completions) completion.done(std::move(completion.outcome));
  completions.clear();
}

class HttpEngine::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)) {}
  ~Impl() { Stop(); }

  // The event loop (http_engine.cc).
  Status Start();
  void Submit(HttpRequest request, HttpCallback done);
  void CancelAll(const std::string& reason) ABSL_LOCKS_EXCLUDED(mutex_);
  // Safe to call more than once.
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);
  void SetMeter(LineMeter* meter) { meter_ = meter; }
  void SetAnswerWatcher(AnswerWatcher watcher) { watcher_ = std::move(watcher); }

  // The loads (http_engine_line.cc).
  Load CurrentLoad() const ABSL_LOCKS_EXCLUDED(mutex_, queue_mutex_);
  AccountLoad CurrentLoad(const std::string& account) const ABSL_LOCKS_EXCLUDED(mutex_);
  std::vector<CallerLoad> Callers() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  // --- The event loop (http_engine.cc) ---
  void Enqueue(std::unique_ptr<Transfer> transfer) ABSL_LOCKS_EXCLUDED(queue_mutex_);
  // Puts what was queued in line.
  void TakeQueue(Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Loop() ABSL_LOCKS_EXCLUDED(mutex_);
  // Lets libcurl act on `socket` (or on its timers), then collects what
  // finished. libcurl may ask for its timers at once (a zero timeout); that
  // is done here too, since it may not be asked from within its callback.
  void Drive(curl_socket_t socket, int flags, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  static int OnSocket(CURL*, curl_socket_t socket, int what, void* user, void*);
  static int OnTimer(CURLM*, long timeout_ms, void* user);
  // Takes no more transfers, and fails every one it has with `reason`.
  void Close(const std::string& reason, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Every transfer, wherever it is, fails with `reason`.
  void FailAll(const std::string& reason, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  CURL* Acquire() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Release(CURL* easy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Finish(CURL* easy, CURLcode code, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // --- The line (http_engine_line.cc) ---
  // Puts the transfer in line and sends what may go (at once, when the
  // line was empty and a connection free). Refused at once: a full line,
  // and a caller's request that could not outlast its account's pause.
  void JoinLine(std::unique_ptr<Transfer> transfer, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Sends waiting requests while connections are free and the line lets one go.
  void Pump(Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Hands a transfer the line let go to libcurl; one that cannot go fails
  // (and leaves its account's count at the API).
  void Send(std::unique_ptr<Transfer> transfer, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Whether `outcome` is the API asking to slow down: then the account
  // pauses and the transfer waits it out at the head of its line (or fails
  // now, when its caller's time ends first). Upkeep's answers go back as
  // they came: the session retries on its own schedule.
  bool WaitOutPause(std::unique_ptr<Transfer>& transfer, const Result<HttpResponse>& outcome,
                    Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Callers that gave up or ran out of time leave the line, unsent; so do
  // those whose time ends before their account's pause does.
  void SweepLine(Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // While requests wait, wakes the engine for the next sweep or the end of
  // a pause, whichever comes first; a timer already set for then is kept.
  void ArmLineTimer(SteadyClock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // An account's API asked to slow down: its callers' requests wait until
  // `until` (logged, and counted, once per pause).
  void PauseAccount(const std::string& account, long http_status, SteadyClock::time_point until)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  Options options_;
  std::thread thread_;
  // Set in Start, closed in Stop; read by the engine thread in between.
  int epoll_fd_ = -1;
  int wake_fd_ = -1;   // tells the engine thread to take the queue, or to stop
  int timer_fd_ = -1;  // libcurl's next timeout
  int line_fd_ = -1;   // the line's next sweep, or the end of a pause
  LineMeter* meter_ = nullptr;  // set before Start
  AnswerWatcher watcher_;       // set before Start
  // Guards the members up to queue_mutex_, and every call into libcurl.
  mutable absl::Mutex mutex_;
  std::map<std::string, long> versions_ ABSL_GUARDED_BY(mutex_);  // each account's last answer's HTTP version
  // Until the API answers in HTTP/1, a transfer waits for a connection
  // that may carry it beside others (HTTP/2) rather than opening one.
  bool multiplexes_ ABSL_GUARDED_BY(mutex_) = true;
  CURLM* multi_ ABSL_GUARDED_BY(mutex_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool timeout_due_ ABSL_GUARDED_BY(mutex_) = false;  // libcurl asked for its timers to run now
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_ ABSL_GUARDED_BY(mutex_);  // in libcurl's hands
  FairLine<std::unique_ptr<Transfer>> line_ ABSL_GUARDED_BY(mutex_);  // in line for a place there
  std::optional<SteadyClock::time_point> line_timer_at_ ABSL_GUARDED_BY(mutex_);  // when line_fd_ fires
  std::vector<CURL*> idle_handles_ ABSL_GUARDED_BY(mutex_);
  // Transfers handed over while the engine is busy.
  mutable absl::Mutex queue_mutex_ ABSL_ACQUIRED_AFTER(mutex_);
  std::deque<std::unique_ptr<Transfer>> queue_ ABSL_GUARDED_BY(queue_mutex_);
  bool wake_pending_ ABSL_GUARDED_BY(queue_mutex_) = false;  // wake_fd_ written, queue not taken since
  bool queue_closed_ ABSL_GUARDED_BY(queue_mutex_) = false;
  std::atomic<uint64_t> refused_{0};  // requests refused for a full line
};

}  // namespace stormbroker
