#include "upstream/http_engine.h"

#include <curl/curl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>
#include <deque>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

#include "upstream/fair_line.h"
#include "upstream/transfer.h"

namespace stormbroker {
namespace {

// At most Options::max_connections transfers are in libcurl's hands at
// once, one per connection (HTTP/1.1); the rest wait in line here, where a
// waiting call costs a few hundred bytes instead of a libcurl handle with its
// buffers. Finished easy handles are kept and reused: creating one per call
// costs more than the call. Connections live in the multi handle, not in these.
//
// A line longer than this means the upstream cannot keep up: a caller is
// told so at once rather than after waiting out its timeout. Sized for a
// build farm's burst (issue 18: 10,000 calls in flight against an API that
// answers in 200 ms) at a few hundred bytes each; the time in line still
// counts against each call's timeout.
constexpr size_t kMaxWaiting = 16384;

// While requests wait, the line is looked over this often for callers that
// gave up or ran out of time, who leave it then, unsent.
constexpr std::chrono::milliseconds kLineSweep{25};
// How long an account waits after an HTTP 429 without a Retry-After.
constexpr std::chrono::seconds kDefaultSlowDown{1};

using SteadyClock = std::chrono::steady_clock;

// The API asked to slow down (429; 503 with a Retry-After): the request was
// not processed, and may be sent again once the pause is over.
bool AskedToSlowDown(const HttpResponse& response) {
  return response.status == 429 || (response.status == 503 && response.retry_after);
}

Status SlowDown(const std::string& account, std::chrono::milliseconds left) {
  return ResourceExhausted("the Storm API asked the broker to slow down for account " + account +
                           ": try again in " + std::to_string((left.count() + 999) / 1000) + " s")
      .WithRetryAfter(left);
}

std::chrono::system_clock::time_point ToWall(SteadyClock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - SteadyClock::now());
}

// A callback owed to a caller, run once the engine's lock is released.
struct Completion {
  HttpCallback done;
  Result<HttpResponse> outcome;
};
using Completions = std::vector<Completion>;

void RunAll(Completions& completions) {
  for (auto& completion : completions) completion.done(std::move(completion.outcome));
  completions.clear();
}

// "HTTP/2" for libcurl's CURL_HTTP_VERSION_2_0, and so on.
std::string ProtocolName(long version) {
  switch (version) {
    case CURL_HTTP_VERSION_1_0: return "HTTP/1.0";
    case CURL_HTTP_VERSION_1_1: return "HTTP/1.1";
    case CURL_HTTP_VERSION_2_0: return "HTTP/2";
    case CURL_HTTP_VERSION_3: return "HTTP/3";
    default: return "";
  }
}

}  // namespace

// libcurl's multi_socket interface, driven from two sides under one mutex:
// Submit() on an idle engine adds the transfer and lets libcurl send the
// request at once, on the caller's thread; the engine thread sleeps in
// epoll_wait (without the mutex) on libcurl's sockets and a timerfd for
// libcurl's timeouts, and drives the replies. While the engine is busy (the
// mutex taken), Submit hands the transfer over through a queue and the
// engine thread, awake anyway, sends it. epoll_ctl and timerfd_settime take
// effect in a running epoll_wait, which is what lets a submitting thread
// change what the engine waits for.
class HttpEngine::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)) {}

  ~Impl() { Stop(); }

  Status Start() {
    static std::once_flag global_init;
    std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    line_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0 || timer_fd_ < 0 || line_fd_ < 0) {
      return Internal(std::string("the upstream engine cannot create its event descriptors: ") + strerror(errno));
    }
    for (int fd : {wake_fd_, timer_fd_, line_fd_}) {
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = fd;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
    }
    absl::MutexLock lock(&mutex_);
    for (const auto& [account, cap] : options_.account_connections) line_.SetCap(account, cap);
    multi_ = curl_multi_init();
    if (!multi_) return Internal("libcurl could not create a multi handle");
    // Reuse connections as much as the server allows; HTTP/2 multiplexes.
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.max_connections));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_connections));
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  void Submit(HttpRequest request, HttpCallback done) {
    auto transfer = std::make_unique<Transfer>();
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    Completions completions;
    {
      // An idle engine sends at once, on this thread. A busy one gets the
      // transfer through the queue: its thread is awake anyway and takes
      // many at a time, and callers do not queue up on the mutex.
      if (mutex_.TryLock()) {
        if (active_.empty() && !stopping_) {
          Start(std::move(transfer), completions);
          Drive(CURL_SOCKET_TIMEOUT, 0, completions);
        }
        mutex_.Unlock();
      }
    }
    if (transfer) Enqueue(std::move(transfer));
    RunAll(completions);
  }

  void CancelAll(const std::string& reason) {
    Completions completions;
    {
      absl::MutexLock lock(&mutex_);
      FailAll(reason, completions);
    }
    RunAll(completions);
  }

  Load CurrentLoad() const ABSL_LOCKS_EXCLUDED(mutex_, queue_mutex_) {
    Load load;
    {
      absl::MutexLock lock(&mutex_);
      load.busy = active_.size();
      load.waiting = line_.size();
    }
    absl::MutexLock lock(&queue_mutex_);
    load.waiting += queue_.size();
    load.refused = refused_.load(std::memory_order_relaxed);
    return load;
  }

  AccountLoad CurrentLoad(const std::string& account) const ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    AccountLoad load{line_.AtApi(account), line_.Waiting(account), std::nullopt, {}};
    if (auto version = versions_.find(account); version != versions_.end()) load.protocol = ProtocolName(version->second);
    if (auto until = line_.PausedUntil(account, SteadyClock::now())) load.paused_until = ToWall(*until);
    return load;
  }

  std::vector<CallerLoad> Callers() const ABSL_LOCKS_EXCLUDED(mutex_) {
    std::map<std::pair<std::string, uid_t>, CallerLoad> by_caller;
    auto now = SteadyClock::now();
    auto of = [&](const Lane& lane) -> CallerLoad& {
      CallerLoad& waiter = by_caller[{lane.account, lane.uid}];
      waiter.account = lane.account;
      waiter.uid = lane.uid;
      return waiter;
    };
    {
      absl::MutexLock lock(&mutex_);
      for (const auto& [easy, transfer] : active_) {
        if (!transfer->request.lane.upkeep) ++of(transfer->request.lane).at_api;
      }
      line_.ForEach([&](const Lane& lane, const std::unique_ptr<Transfer>& transfer) {
        if (lane.upkeep) return;
        CallerLoad& waiter = of(lane);
        ++waiter.waiting;
        waiter.longest = std::max(waiter.longest, Ms(now - transfer->submitted));
      });
    }
    std::vector<CallerLoad> waiters;
    for (auto& [caller, waiter] : by_caller) waiters.push_back(std::move(waiter));
    std::sort(waiters.begin(), waiters.end(), [](const CallerLoad& a, const CallerLoad& b) {
      return a.waiting + a.at_api > b.waiting + b.at_api;
    });
    return waiters;
  }

  void SetMeter(LineMeter* meter) { meter_ = meter; }
  void SetAnswerWatcher(AnswerWatcher watcher) { watcher_ = std::move(watcher); }

  // Safe to call more than once.
  void Stop() {
    Completions completions;
    {
      absl::MutexLock lock(&mutex_);
      Close("the broker is shutting down", completions);
    }
    RunAll(completions);
    if (thread_.joinable()) {
      uint64_t one = 1;
      if (write(wake_fd_, &one, sizeof one) < 0) spdlog::error("cannot wake the upstream engine: {}", strerror(errno));
      thread_.join();
    }
    absl::MutexLock lock(&mutex_);
    for (CURL* easy : idle_handles_) curl_easy_cleanup(easy);
    idle_handles_.clear();
    if (multi_) curl_multi_cleanup(multi_);
    multi_ = nullptr;
    for (int fd : {epoll_fd_, wake_fd_, timer_fd_, line_fd_}) {
      if (fd >= 0) close(fd);
    }
    epoll_fd_ = wake_fd_ = timer_fd_ = line_fd_ = -1;
  }

 private:
  void Enqueue(std::unique_ptr<Transfer> transfer) ABSL_LOCKS_EXCLUDED(queue_mutex_) {
    {
      absl::MutexLock lock(&queue_mutex_);
      if (!queue_closed_) {
        queue_.push_back(std::move(transfer));
        if (wake_pending_) return;
        wake_pending_ = true;
      }
    }
    if (transfer) {
      transfer->done(Unavailable("the broker is shutting down"));
      return;
    }
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) spdlog::error("cannot wake the upstream engine: {}", strerror(errno));
  }

  // Starts what was queued.
  void TakeQueue(Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    std::deque<std::unique_ptr<Transfer>> queued;
    {
      absl::MutexLock lock(&queue_mutex_);
      queued.swap(queue_);
      wake_pending_ = false;
    }
    for (auto& transfer : queued) Start(std::move(transfer), completions);
    if (!queued.empty()) Drive(CURL_SOCKET_TIMEOUT, 0, completions);
  }

  void Loop() {
    std::vector<epoll_event> events(64);
    for (;;) {
      int ready = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
      if (ready < 0 && errno != EINTR) {
        // Nothing could be answered any more: fail everything now and later,
        // rather than leave callers waiting.
        std::string reason = std::string("the upstream engine cannot wait for events: ") + strerror(errno);
        spdlog::critical("{}", reason);
        Completions failed;
        {
          absl::MutexLock lock(&mutex_);
          Close(reason, failed);
        }
        RunAll(failed);
        return;
      }
      Completions completions;
      {
        absl::MutexLock lock(&mutex_);
        if (stopping_) return;
        for (int i = 0; i < ready; ++i) {
          int fd = events[i].data.fd;
          if (fd == wake_fd_) {
            uint64_t count;
            if (read(wake_fd_, &count, sizeof count) < 0) continue;  // another event took it
            TakeQueue(completions);
            continue;
          }
          if (fd == timer_fd_) {
            uint64_t expirations;
            if (read(timer_fd_, &expirations, sizeof expirations) < 0) continue;  // re-armed meanwhile
            Drive(CURL_SOCKET_TIMEOUT, 0, completions);
            continue;
          }
          if (fd == line_fd_) {
            uint64_t expirations;
            if (read(line_fd_, &expirations, sizeof expirations) < 0) continue;  // re-armed meanwhile
            line_timer_at_.reset();
            SweepLine(completions);
            Drive(CURL_SOCKET_TIMEOUT, 0, completions);
            continue;
          }
          int flags = 0;
          if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
          if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
          if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
          Drive(fd, flags, completions);
        }
      }
      RunAll(completions);
    }
  }

  // Lets libcurl act on `socket` (or on its timers), then
  // collects what finished. libcurl may ask for its timers at once (a zero
  // timeout); that is done here too, since it may not be asked from within
  // its callback.
  void Drive(curl_socket_t socket, int flags, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    int running = 0;
    curl_multi_socket_action(multi_, socket, flags, &running);
    do {
      while (timeout_due_) {
        timeout_due_ = false;
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) Finish(msg->easy_handle, msg->data.result, completions);
      }
      // Finished transfers make room for waiting ones, which ask for their
      // timers at once (and so go round again).
      Pump(completions);
    } while (timeout_due_);
  }

  static int OnSocket(CURL*, curl_socket_t socket, int what, void* user, void*) {
    auto* self = static_cast<Impl*>(user);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
      return 0;
    }
    epoll_event event{};
    event.data.fd = socket;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) event.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) event.events |= EPOLLOUT;
    if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, socket, &event);
    }
    return 0;
  }

  // Only a timeout in the future touches the timerfd (a system call per
  // call otherwise): "now" is served by Drive, and a timer left armed when
  // libcurl wants none only costs one spurious, harmless wake-up.
  static int OnTimer(CURLM*, long timeout_ms, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->mutex_.AssertHeld();  // libcurl calls back only from calls made under it
    if (timeout_ms == 0) self->timeout_due_ = true;
    if (timeout_ms <= 0) return 0;
    itimerspec when{};
    when.it_value.tv_sec = timeout_ms / 1000;
    when.it_value.tv_nsec = (timeout_ms % 1000) * 1'000'000;
    timerfd_settime(self->timer_fd_, 0, &when, nullptr);
    return 0;
  }

  // Takes no more transfers, and fails every one it has
  // with `reason`.
  void Close(const std::string& reason, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    stopping_ = true;
    {
      absl::MutexLock queue_lock(&queue_mutex_);
      queue_closed_ = true;
    }
    FailAll(reason, completions);
  }

  // Every transfer, wherever it is, fails with `reason`.
  void FailAll(const std::string& reason, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    for (auto& [easy, transfer] : active_) {
      Release(easy);
      line_.Done(transfer->request.lane.account);
      completions.push_back({std::move(transfer->done), Unavailable(reason)});
    }
    active_.clear();
    for (auto& entry : line_.RemoveIf([](const auto&) { return true; })) {
      completions.push_back({std::move(entry.item->done), Unavailable(reason)});
    }
    absl::MutexLock queue_lock(&queue_mutex_);
    for (auto& transfer : queue_) completions.push_back({std::move(transfer->done), Unavailable(reason)});
    queue_.clear();
  }

  // Puts the transfer in line and sends what may go (at once, when the
  // line was empty and a connection free). Refused at once: a full line,
  // and a caller's request that could not outlast its account's pause.
  void Start(std::unique_ptr<Transfer> transfer, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (line_.size() >= kMaxWaiting) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      completions.push_back({std::move(transfer->done),
                             Unavailable("the upstream is saturated: " + std::to_string(kMaxWaiting) +
                                         " calls are already waiting for it; try again shortly")});
      return;
    }
    const Lane& lane = transfer->request.lane;
    auto now = SteadyClock::now();
    if (auto paused = line_.PausedUntil(lane.account, now); paused && !lane.upkeep && Expiry(*transfer) < *paused) {
      completions.push_back({std::move(transfer->done), SlowDown(lane.account, Ms(*paused - now))});
      return;
    }
    Lane in_line = lane;
    line_.Push(std::move(in_line), std::move(transfer));
    Pump(completions);
  }

  // Sends waiting requests while connections are free and the line lets one go.
  void Pump(Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    auto now = SteadyClock::now();
    while (active_.size() < options_.max_connections) {
      auto entry = line_.Pop(now);
      if (!entry) break;
      Begin(std::move(entry->item), completions);
    }
    ArmLineTimer(now);
  }

  static SteadyClock::time_point Expiry(const Transfer& transfer) {
    return transfer.submitted + transfer.request.timeout;
  }
  static std::chrono::milliseconds Ms(SteadyClock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
  }

  // Hands a transfer the line let go to libcurl; one that cannot go fails
  // (and leaves its account's count at the API).
  void Begin(std::unique_ptr<Transfer> transfer, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    const Lane& lane = transfer->request.lane;
    auto fail = [&](Status why) {
      mutex_.AssertHeld();  // the analysis does not follow the lock into a lambda
      line_.Done(lane.account);
      completions.push_back({std::move(transfer->done), std::move(why)});
    };
    if (lane.Abandoned()) return fail(Gone());
    // Time spent in line counts against the request's timeout.
    auto waited = SteadyClock::now() - transfer->submitted;
    std::chrono::milliseconds left = transfer->request.timeout - Ms(waited);
    if (left.count() <= 0) return fail(OutOfTime(*transfer));
    if (!lane.Starts()) return fail(Gone());
    if (meter_) meter_->Waited(lane.account, waited);
    CURL* easy = Acquire();
    if (!easy) return fail(Internal("libcurl could not create a handle"));
    ConfigureTransfer(easy, *transfer, options_, left);
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, multiplexes_ ? 1L : 0L);
    CURLMcode added = curl_multi_add_handle(multi_, easy);
    if (added != CURLM_OK) {
      curl_easy_cleanup(easy);
      return fail(Internal(std::string("libcurl refused a transfer: ") + curl_multi_strerror(added)));
    }
    active_.emplace(easy, std::move(transfer));
  }

  static Status Gone() { return Unavailable("the caller left before its call was sent upstream"); }
  static Status OutOfTime(const Transfer& transfer) {
    return Unavailable("upstream " + transfer.request.url + ": no connection came free within " +
                       std::to_string(transfer.request.timeout.count()) + " ms");
  }

  // Callers that gave up or ran out of time leave the line, unsent; so do
  // those whose time ends before their account's pause does.
  void SweepLine(Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    auto now = SteadyClock::now();
    auto gone = line_.RemoveIf([&](const FairLine<std::unique_ptr<Transfer>>::Entry& entry) {
      mutex_.AssertHeld();
      if (entry.lane.Abandoned() || Expiry(*entry.item) <= now) return true;
      auto paused = line_.PausedUntil(entry.lane.account, now);
      return paused && !entry.lane.upkeep && Expiry(*entry.item) < *paused;
    });
    for (auto& [lane, transfer] : gone) {
      Status why = lane.Abandoned()            ? Gone()
                   : Expiry(*transfer) <= now ? OutOfTime(*transfer)
                                              : SlowDown(lane.account, Ms(*line_.PausedUntil(lane.account, now) - now));
      completions.push_back({std::move(transfer->done), std::move(why)});
    }
  }

  // While requests wait, wakes the engine for the next sweep or the end of
  // a pause, whichever comes first; a timer already set for then is kept.
  void ArmLineTimer(SteadyClock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (line_.size() == 0) return;  // a timer left set costs one harmless wake-up
    SteadyClock::time_point want = now + kLineSweep;
    if (auto end = line_.NextPauseEnd(now); end && *end < want) want = *end;
    if (line_timer_at_ && *line_timer_at_ > now && *line_timer_at_ <= want) return;
    auto in = std::max<SteadyClock::duration>(want - now, std::chrono::microseconds(100));
    itimerspec when{};
    when.it_value.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(in).count();
    when.it_value.tv_nsec = (std::chrono::duration_cast<std::chrono::nanoseconds>(in) % std::chrono::seconds(1)).count();
    timerfd_settime(line_fd_, 0, &when, nullptr);
    line_timer_at_ = want;
  }

  // An account's API asked to slow down: its callers' requests wait until
  // `until` (logged, and counted, once per pause).
  void PauseAccount(const std::string& account, long http_status, SteadyClock::time_point until)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    auto now = SteadyClock::now();
    bool fresh = !line_.PausedUntil(account, now);
    line_.Pause(account, until);
    if (!fresh) return;
    spdlog::warn("account {}: the Storm API asked to slow down (HTTP {}); its callers' calls wait {} ms", account,
                 http_status, Ms(until - now).count());
    if (meter_) meter_->Paused(account, until - now);
  }

  CURL* Acquire() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (idle_handles_.empty()) return curl_easy_init();
    CURL* easy = idle_handles_.back();
    idle_handles_.pop_back();
    return easy;
  }

  void Release(CURL* easy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    curl_multi_remove_handle(multi_, easy);
    if (idle_handles_.size() >= options_.max_connections) {
      curl_easy_cleanup(easy);
      return;
    }
    curl_easy_reset(easy);  // forgets the options, the credentials among them
    idle_handles_.push_back(easy);
  }

  void Finish(CURL* easy, CURLcode code, Completions& completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    auto found = active_.find(easy);
    if (found == active_.end()) return;
    std::unique_ptr<Transfer> transfer = std::move(found->second);
    active_.erase(found);
    long status = 0, version = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    Release(easy);
    const Lane& lane = transfer->request.lane;
    line_.Done(lane.account);
    Result<HttpResponse> outcome = TransferOutcome(*transfer, code, status, options_);
    if (outcome.ok()) {
      outcome->http_version = version;
      versions_[lane.account] = version;
      if (version != CURL_HTTP_VERSION_2_0 && version != CURL_HTTP_VERSION_3) multiplexes_ = false;
      if (watcher_) watcher_(lane, *outcome);
    }
    if (outcome.ok() && AskedToSlowDown(*outcome) && !lane.upkeep) {
      // Not processed: the call waits out the pause in its place in line,
      // if its caller's time allows. (Upkeep's own answer goes back as it
      // came: the session retries it on its own schedule.)
      auto now = SteadyClock::now();
      auto until = now + outcome->retry_after.value_or(kDefaultSlowDown);
      PauseAccount(lane.account, outcome->status, until);
      if (Expiry(*transfer) < until) {
        completions.push_back({std::move(transfer->done), SlowDown(lane.account, Ms(until - now))});
        return;
      }
      transfer->ForgetAnswer();
      Lane in_line = lane;
      line_.PushFront(std::move(in_line), std::move(transfer));
      SweepLine(completions);  // those who cannot wait that long hear it now
      return;
    }
    completions.push_back({std::move(transfer->done), std::move(outcome)});
  }

  Options options_;
  std::thread thread_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;   // tells the engine thread to take the queue, or to stop
  int timer_fd_ = -1;  // libcurl's next timeout
  int line_fd_ = -1;   // the line's next sweep, or the end of a pause
  LineMeter* meter_ = nullptr;
  AnswerWatcher watcher_;
  std::map<std::string, long> versions_ ABSL_GUARDED_BY(mutex_);  // each account's last answer's HTTP version
  // Until the API answers in HTTP/1, a transfer waits for a connection
  // that may carry it beside others (HTTP/2) rather than opening one.
  bool multiplexes_ ABSL_GUARDED_BY(mutex_) = true;
  mutable absl::Mutex mutex_;  // guards everything below, and every call into libcurl
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

HttpEngine::HttpEngine(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpEngine::~HttpEngine() = default;
Status HttpEngine::Start() { return impl_->Start(); }
void HttpEngine::Submit(HttpRequest request, HttpCallback done) {
  impl_->Submit(std::move(request), std::move(done));
}
void HttpEngine::CancelAll(const std::string& reason) { impl_->CancelAll(reason); }
void HttpEngine::Stop() { impl_->Stop(); }
HttpEngine::Load HttpEngine::CurrentLoad() const { return impl_->CurrentLoad(); }
HttpEngine::AccountLoad HttpEngine::CurrentLoad(const std::string& account) const {
  return impl_->CurrentLoad(account);
}
std::vector<HttpEngine::CallerLoad> HttpEngine::Callers() const { return impl_->Callers(); }
void HttpEngine::SetMeter(LineMeter* meter) { impl_->SetMeter(meter); }
void HttpEngine::SetAnswerWatcher(AnswerWatcher watcher) { impl_->SetAnswerWatcher(std::move(watcher)); }

}  // namespace stormbroker
