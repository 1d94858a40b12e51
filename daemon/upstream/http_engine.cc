#include "upstream/http_engine_impl.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include <spdlog/spdlog.h>

// The event loop: libcurl's sockets and timers, the queue from busy
// moments, and what finished (http_engine_impl.h says how the two sides
// share the work).

namespace stormbroker {

Status HttpEngine::Impl::Start() {
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
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      return Internal(std::string("the upstream engine cannot watch its event descriptors: ") + strerror(errno));
    }
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

void HttpEngine::Impl::Submit(HttpRequest request, HttpCallback done) {
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
        JoinLine(std::move(transfer), completions);
        Drive(CURL_SOCKET_TIMEOUT, 0, completions);
      }
      mutex_.Unlock();
    }
  }
  if (transfer) Enqueue(std::move(transfer));
  RunAll(completions);
}

void HttpEngine::Impl::CancelAll(const std::string& reason) {
  Completions completions;
  {
    absl::MutexLock lock(&mutex_);
    FailAll(reason, completions);
  }
  RunAll(completions);
}

void HttpEngine::Impl::Stop() {
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

void HttpEngine::Impl::Enqueue(std::unique_ptr<Transfer> transfer) {
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

void HttpEngine::Impl::TakeQueue(Completions& completions) {
  std::deque<std::unique_ptr<Transfer>> queued;
  {
    absl::MutexLock lock(&queue_mutex_);
    queued.swap(queue_);
    wake_pending_ = false;
  }
  for (auto& transfer : queued) JoinLine(std::move(transfer), completions);
  if (!queued.empty()) Drive(CURL_SOCKET_TIMEOUT, 0, completions);
}

void HttpEngine::Impl::Loop() {
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

void HttpEngine::Impl::Drive(curl_socket_t socket, int flags, Completions& completions) {
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

int HttpEngine::Impl::OnSocket(CURL*, curl_socket_t socket, int what, void* user, void*) {
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
int HttpEngine::Impl::OnTimer(CURLM*, long timeout_ms, void* user) {
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

void HttpEngine::Impl::Close(const std::string& reason, Completions& completions) {
  stopping_ = true;
  {
    absl::MutexLock queue_lock(&queue_mutex_);
    queue_closed_ = true;
  }
  FailAll(reason, completions);
}

void HttpEngine::Impl::FailAll(const std::string& reason, Completions& completions) {
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

CURL* HttpEngine::Impl::Acquire() {
  if (idle_handles_.empty()) return curl_easy_init();
  CURL* easy = idle_handles_.back();
  idle_handles_.pop_back();
  return easy;
}

void HttpEngine::Impl::Release(CURL* easy) {
  curl_multi_remove_handle(multi_, easy);
  if (idle_handles_.size() >= options_.max_connections) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);  // forgets the options, the credentials among them
  idle_handles_.push_back(easy);
}

void HttpEngine::Impl::Finish(CURL* easy, CURLcode code, Completions& completions) {
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
    versions_[lane.account] = version;
    if (version != CURL_HTTP_VERSION_2_0 && version != CURL_HTTP_VERSION_3) multiplexes_ = false;
    if (watcher_) watcher_(lane, *outcome);
  }
  if (WaitOutPause(transfer, outcome, completions)) return;
  completions.push_back({std::move(transfer->done), std::move(outcome)});
}

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
