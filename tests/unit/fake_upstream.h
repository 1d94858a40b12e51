// A StormUpstream that records calls and lets the test answer them.
#pragma once

#include <deque>
#include <absl/synchronization/mutex.h>
#include <stdexcept>

#include "upstream/storm_client.h"

namespace stormbroker::testing {

struct RecordedCall {
  std::string method;
  nlohmann::json params;
  std::string username;
  std::string credential;  // revealed: tests compare it
  std::string passcode;    // empty when none was sent
  StormCallback done;
};

class FakeUpstream : public StormUpstream {
 public:
  void Call(const std::string& method, const nlohmann::json& params, const Credentials& credentials,
            StormCallback done, CallOptions options) override {
    last_timeout = options.timeout;
    last_version = options.version;
    last_lane = options.lane;
    absl::MutexLock lock(&mutex_);
    calls_.push_back({method, params, credentials.username, std::string(credentials.secret.Reveal()),
                      credentials.passcode ? std::string(credentials.passcode->Reveal()) : "", std::move(done)});
  }
  size_t Pending() {
    absl::MutexLock lock(&mutex_);
    return calls_.size();
  }
  RecordedCall Take() {
    absl::MutexLock lock(&mutex_);
    if (calls_.empty()) throw std::runtime_error("no call is pending upstream");
    RecordedCall call = std::move(calls_.front());
    calls_.pop_front();
    return call;
  }

  static Result<StormReply> Ok(nlohmann::json result, std::optional<long long> server_time = std::nullopt) {
    StormReply reply;
    reply.outcome.result = std::move(result);
    reply.server_time = server_time;
    return reply;
  }
  static Result<StormReply> Error(long http_status, const std::string& error_class) {
    StormReply reply;
    reply.outcome.is_error = true;
    reply.outcome.error.error_class = error_class;
    reply.outcome.error.message = "from the fake";
    reply.outcome.error.http_status = http_status;
    return reply;
  }

 private:
  absl::Mutex mutex_;
  std::deque<RecordedCall> calls_ ABSL_GUARDED_BY(mutex_);

 public:
  std::chrono::milliseconds last_timeout{0};
  std::string last_version;
  Lane last_lane;
};

}  // namespace stormbroker::testing
