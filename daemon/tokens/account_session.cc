#include "tokens/account_session.h"

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>

namespace stormbroker {
namespace {

constexpr const char* kTokenMethod = "Account/Auth/token";
constexpr std::chrono::seconds kMaxBackoff{60};

double Jitter(double low, double high) {
  thread_local std::mt19937 random{std::random_device{}()};
  return std::uniform_real_distribution<double>(low, high)(random);
}

std::string Describe(const ApiError& error) {
  std::string text = error.error_class;
  if (!error.message.empty()) text += ": " + error.message;
  if (error.http_status != 200) text += " (HTTP " + std::to_string(error.http_status) + ")";
  return text;
}

}  // namespace

const char* AccountStateName(AccountState state) {
  switch (state) {
    case AccountState::kStarting: return "starting";
    case AccountState::kActive: return "active";
    case AccountState::kRefreshing: return "refreshing";
    case AccountState::kUnreachable: return "unreachable";
    case AccountState::kLoginFailed: return "login-failed";
  }
  return "unknown";
}

AccountSession::AccountSession(const AccountConfig& account, StormUpstream& upstream,
                               Scheduler& scheduler)
    : name_(account.name),
      username_(account.username),
      password_(account.password.Clone()),
      token_timeout_(account.token_timeout),
      upstream_(upstream),
      scheduler_(scheduler) {}

void AccountSession::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  BeginLoginLocked();
}

void AccountSession::Stop() {
  std::vector<LeaseCallback> waiters;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    if (timer_) scheduler_.Cancel(*timer_);
    timer_.reset();
    waiters.swap(waiters_);
  }
  FailWaiters(std::move(waiters), Unavailable("the broker is shutting down"));
}

void AccountSession::Call(const std::string& method, const nlohmann::json& params,
                          std::function<void(Result<ApiOutcome>)> done) {
  CallWithRetry(method, params, /*may_retry=*/true, std::move(done));
}

void AccountSession::CallWithRetry(const std::string& method, const nlohmann::json& params,
                                   bool may_retry, std::function<void(Result<ApiOutcome>)> done) {
  auto self = shared_from_this();
  AcquireToken([self, method, params, may_retry, done = std::move(done)](Result<Lease> lease) mutable {
    if (!lease.ok()) {
      done(lease.status());
      return;
    }
    uint64_t generation = lease->generation;
    self->upstream_.Call(
        method, params, self->username_, lease->token,
        [self, method, params, may_retry, generation, done = std::move(done)](Result<StormReply> reply) mutable {
          if (reply.ok() && reply->outcome.is_error && IsAuthorizationFailure(reply->outcome.error)) {
            // The API refused our token, so it did not run the call: safe to
            // get a new token and send it once more.
            self->TokenRejected(generation);
            if (may_retry) {
              self->CallWithRetry(method, params, /*may_retry=*/false, std::move(done));
              return;
            }
          }
          if (!reply.ok()) {
            done(reply.status());
            return;
          }
          done(std::move(reply->outcome));
        });
  });
}

void AccountSession::AcquireToken(LeaseCallback done) {
  Result<Lease> outcome = Internal("unreachable");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    switch (state_) {
      case AccountState::kActive:
      case AccountState::kRefreshing:
        outcome = Lease{token_.Clone(), generation_};
        break;
      case AccountState::kStarting:
        waiters_.push_back(std::move(done));
        return;
      case AccountState::kUnreachable:
        if (login_in_flight_) {
          waiters_.push_back(std::move(done));
          return;
        }
        outcome = Unavailable("account " + name_ + " has no token: " + last_error_ +
                              "; the broker keeps retrying");
        break;
      case AccountState::kLoginFailed:
        outcome = LoginRefusedLocked();
        break;
    }
  }
  done(std::move(outcome));
}

Status AccountSession::LoginRefusedLocked() const {
  return FailedPrecondition("account " + name_ + ": the Storm API refused the login of user " +
                            username_ + " (" + last_error_ +
                            "); fix the password file and restart stormbrokerd");
}

void AccountSession::TokenRejected(uint64_t generation) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopped_ || generation != generation_ || token_.empty()) return;
  spdlog::warn("account {}: the Storm API rejected the token; logging in again", name_);
  token_ = Secret();
  state_ = AccountState::kStarting;
  if (timer_) scheduler_.Cancel(*timer_);
  timer_.reset();
  BeginLoginLocked();
}

void AccountSession::BeginLoginLocked() {
  if (login_in_flight_ || stopped_) return;  // single flight
  login_in_flight_ = true;
  auto sent_at = scheduler_.Now();
  nlohmann::json params = {{"timeout", token_timeout_.count() / 1000}};
  spdlog::info("account {}: logging in as {}", name_, username_);
  auto self = shared_from_this();
  upstream_.Call(kTokenMethod, params, username_, password_,
                 [self, sent_at](Result<StormReply> reply) { self->OnLoginReply(sent_at, std::move(reply)); });
}

void AccountSession::OnLoginReply(Scheduler::Clock::time_point sent_at, Result<StormReply> reply) {
  std::vector<LeaseCallback> waiters;
  Status failure;
  std::optional<Lease> lease;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    login_in_flight_ = false;
    if (stopped_) return;
    bool has_token = !token_.empty();
    bool permanent = false;
    if (!reply.ok()) {
      failure = reply.status();
    } else if (reply->outcome.is_error) {
      const ApiError& error = reply->outcome.error;
      permanent = !IsTransientFailure(error);
      failure = permanent ? FailedPrecondition(Describe(error)) : Unavailable(Describe(error));
    } else {
      failure = AdoptTokenLocked(sent_at, *reply, /*new_token=*/true);
    }
    waiters.swap(waiters_);

    if (failure.ok()) {
      failures_in_a_row_ = 0;
      last_error_.clear();
      state_ = AccountState::kActive;
      spdlog::info("account {}: token obtained", name_);
      ScheduleKeepAliveLocked();
      lease = Lease{token_.Clone(), generation_};
    } else if (permanent) {
      // Retrying a refused password can lock the account: stop and say so.
      // A token still held keeps serving until the API rejects it.
      last_error_ = failure.message();
      spdlog::error("account {}: login refused: {}; not retrying", name_, last_error_);
      if (!has_token) state_ = AccountState::kLoginFailed;
      failure = LoginRefusedLocked();
    } else {
      last_error_ = failure.message();
      auto delay = NextBackoffLocked();
      spdlog::warn("account {}: login failed: {}; retrying in {} ms", name_, last_error_, delay.count());
      if (!has_token) state_ = AccountState::kUnreachable;
      ScheduleLocked(scheduler_.Now() + delay, &AccountSession::RetryLogin);
      failure = Unavailable("account " + name_ + " has no token: " + last_error_);
    }
    if (has_token && !lease) lease = Lease{token_.Clone(), generation_};
  }
  if (lease) {
    for (auto& waiter : waiters) waiter(Lease{lease->token.Clone(), lease->generation});
  } else {
    FailWaiters(std::move(waiters), failure);
  }
}

Status AccountSession::AdoptTokenLocked(Scheduler::Clock::time_point sent_at, const StormReply& reply,
                                        bool new_token) {
  const nlohmann::json& result = reply.outcome.result;
  if (!result.is_object() || !result.contains("token") || !result["token"].is_string() ||
      result["token"].get_ref<const std::string&>().empty() || !result.contains("expires") ||
      !result["expires"].is_number()) {
    return Unavailable("the Storm API answered " + std::string(kTokenMethod) +
                       " without a token and expiry time");
  }
  // Count the inactivity timeout from when we sent the request (the server
  // started it no earlier), in our own clock. `expires` is the server's wall
  // clock; compared with the server's own Date it tells how long the server
  // really granted (less than asked near the hard limit) with no clock skew.
  auto granted = std::chrono::duration_cast<std::chrono::milliseconds>(token_timeout_);
  long long expires = result["expires"].get<long long>();
  long long server_now = reply.server_time.value_or(
      std::chrono::duration_cast<std::chrono::seconds>(scheduler_.WallNow().time_since_epoch()).count());
  granted = std::min(granted, std::chrono::milliseconds(std::max(0LL, expires - server_now) * 1000));
  inactivity_deadline_ = sent_at + granted;

  Secret token(result["token"].get<std::string>());
  if (new_token || !(token == token_)) {
    token_ = std::move(token);
    ++generation_;
    hard_deadline_ = sent_at + kMaxLifetime;
  }
  return Status::Ok();
}

void AccountSession::ScheduleKeepAliveLocked() {
  auto now = scheduler_.Now();
  auto remaining = inactivity_deadline_ - now;
  // Renew when the server grants much less than asked: the hard limit is near.
  bool renew = remaining < token_timeout_ / 2;
  auto delay = std::chrono::duration_cast<Scheduler::Clock::duration>(remaining * Jitter(0.45, 0.55));
  if (renew) {
    spdlog::info("account {}: token nears its hard limit; obtaining a new one", name_);
    ScheduleLocked(now + delay, &AccountSession::RetryLogin);
  } else {
    ScheduleLocked(now + delay, &AccountSession::KeepAlive);
  }
}

void AccountSession::ScheduleLocked(Scheduler::Clock::time_point when, void (AccountSession::*what)()) {
  if (timer_) scheduler_.Cancel(*timer_);
  std::weak_ptr<AccountSession> weak = weak_from_this();
  timer_ = scheduler_.RunAt(when, [weak, what] {
    if (auto self = weak.lock()) (self.get()->*what)();
  });
}

std::chrono::milliseconds AccountSession::NextBackoffLocked() {
  int exponent = std::min(failures_in_a_row_++, 6);
  auto base = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000LL << exponent), kMaxBackoff);
  return std::chrono::milliseconds(static_cast<long long>(base.count() * Jitter(0.5, 1.0)));
}

void AccountSession::RetryLogin() {
  std::lock_guard<std::mutex> lock(mutex_);
  timer_.reset();
  if (state_ == AccountState::kActive) state_ = AccountState::kRefreshing;
  BeginLoginLocked();
}

void AccountSession::KeepAlive() {
  std::lock_guard<std::mutex> lock(mutex_);
  timer_.reset();
  if (stopped_ || token_.empty()) return;
  auto sent_at = scheduler_.Now();
  uint64_t generation = generation_;
  nlohmann::json params = {{"timeout", token_timeout_.count() / 1000}};
  auto self = shared_from_this();
  upstream_.Call(kTokenMethod, params, username_, token_,
                 [self, sent_at, generation](Result<StormReply> reply) {
                   self->OnKeepAliveReply(sent_at, generation, std::move(reply));
                 });
}

void AccountSession::OnKeepAliveReply(Scheduler::Clock::time_point sent_at, uint64_t generation,
                                      Result<StormReply> reply) {
  bool rejected = reply.ok() && reply->outcome.is_error && IsAuthorizationFailure(reply->outcome.error);
  if (rejected) {
    TokenRejected(generation);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopped_ || generation != generation_) return;
  Status status = !reply.ok() ? reply.status()
                  : reply->outcome.is_error ? Unavailable(Describe(reply->outcome.error))
                                            : AdoptTokenLocked(sent_at, *reply, /*new_token=*/false);
  if (status.ok()) {
    failures_in_a_row_ = 0;
    ScheduleKeepAliveLocked();
    return;
  }
  // The token still works until its deadline: retry soon, well before it.
  last_error_ = status.message();
  auto now = scheduler_.Now();
  auto delay = std::min<Scheduler::Clock::duration>(NextBackoffLocked(), (inactivity_deadline_ - now) / 3);
  spdlog::warn("account {}: keep-alive failed: {}; retrying", name_, last_error_);
  ScheduleLocked(now + std::max<Scheduler::Clock::duration>(delay, std::chrono::milliseconds(50)),
                 &AccountSession::KeepAlive);
}

void AccountSession::FailWaiters(std::vector<LeaseCallback> waiters, const Status& status) {
  for (auto& waiter : waiters) waiter(status);
}

AccountSnapshot AccountSession::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  AccountSnapshot snapshot;
  snapshot.name = name_;
  snapshot.username = username_;
  snapshot.state = state_;
  snapshot.last_error = last_error_;
  if (!token_.empty()) {
    auto now = scheduler_.Now();
    auto wall = scheduler_.WallNow();
    auto to_wall = [&](Scheduler::Clock::time_point t) {
      return wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - now);
    };
    snapshot.inactivity_deadline = to_wall(inactivity_deadline_);
    snapshot.hard_deadline = to_wall(hard_deadline_);
  }
  return snapshot;
}

}  // namespace stormbroker
