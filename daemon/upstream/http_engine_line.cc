#include "upstream/http_engine_impl.h"

#include <sys/timerfd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

// The line: what is sent when (the fair line, the API's pauses, callers who
// left or ran out of time), and the loads it reports.

namespace stormbroker {
namespace {

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

std::chrono::milliseconds Ms(SteadyClock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

SteadyClock::time_point Expiry(const Transfer& transfer) { return transfer.submitted + transfer.request.timeout; }

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

Status Gone() { return Unavailable("the caller left before its call was sent upstream"); }

Status OutOfTime(const Transfer& transfer) {
  return Unavailable("upstream " + transfer.request.url + ": no connection came free within " +
                     std::to_string(transfer.request.timeout.count()) + " ms");
}

std::chrono::system_clock::time_point ToWall(SteadyClock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - SteadyClock::now());
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

HttpEngine::Load HttpEngine::Impl::CurrentLoad() const {
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

HttpEngine::AccountLoad HttpEngine::Impl::CurrentLoad(const std::string& account) const {
  absl::MutexLock lock(&mutex_);
  AccountLoad load{line_.AtApi(account), line_.Waiting(account), std::nullopt, {}};
  if (auto version = versions_.find(account); version != versions_.end()) load.protocol = ProtocolName(version->second);
  if (auto until = line_.PausedUntil(account, SteadyClock::now())) load.paused_until = ToWall(*until);
  return load;
}

std::vector<HttpEngine::CallerLoad> HttpEngine::Impl::Callers() const {
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

void HttpEngine::Impl::JoinLine(std::unique_ptr<Transfer> transfer, Completions& completions) {
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

void HttpEngine::Impl::Pump(Completions& completions) {
  auto now = SteadyClock::now();
  while (active_.size() < options_.max_connections) {
    auto entry = line_.Pop(now);
    if (!entry) break;
    Send(std::move(entry->item), completions);
  }
  ArmLineTimer(now);
}

void HttpEngine::Impl::Send(std::unique_ptr<Transfer> transfer, Completions& completions) {
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

void HttpEngine::Impl::SweepLine(Completions& completions) {
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

void HttpEngine::Impl::ArmLineTimer(SteadyClock::time_point now) {
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

void HttpEngine::Impl::PauseAccount(const std::string& account, long http_status,
                                    SteadyClock::time_point until) {
  auto now = SteadyClock::now();
  bool fresh = !line_.PausedUntil(account, now);
  line_.Pause(account, until);
  if (!fresh) return;
  spdlog::warn("account {}: the Storm API asked to slow down (HTTP {}); its callers' calls wait {} ms", account,
               http_status, Ms(until - now).count());
  if (meter_) meter_->Paused(account, until - now);
}
bool HttpEngine::Impl::WaitOutPause(std::unique_ptr<Transfer>& transfer, const Result<HttpResponse>& outcome,
                                    Completions& completions) {
  const Lane& lane = transfer->request.lane;
  if (!outcome.ok() || !AskedToSlowDown(*outcome) || lane.upkeep) return false;
  // Not processed: the call waits out the pause in its place in line, if
  // its caller's time allows.
  auto now = SteadyClock::now();
  auto until = now + outcome->retry_after.value_or(kDefaultSlowDown);
  PauseAccount(lane.account, outcome->status, until);
  if (Expiry(*transfer) < until) {
    completions.push_back({std::move(transfer->done), SlowDown(lane.account, Ms(until - now))});
    return true;
  }
  transfer->ForgetAnswer();
  Lane in_line = lane;
  line_.PushFront(std::move(in_line), std::move(transfer));
  SweepLine(completions);  // those who cannot wait that long hear it now
  return true;
}
}  // namespace stormbroker
