#include "doors/grpc/account_watch.h"

#include <google/protobuf/util/time_util.h>
#include <absl/synchronization/mutex.h>

namespace stormbroker {
namespace {

// A watcher this far behind is not reading: end its stream rather than grow.
constexpr size_t kMaxQueuedEvents = 1000;

}  // namespace

v1::AccountState ToProto(AccountState state) {
  switch (state) {
    case AccountState::kStarting: return v1::ACCOUNT_STATE_STARTING;
    case AccountState::kActive: return v1::ACCOUNT_STATE_ACTIVE;
    case AccountState::kRefreshing: return v1::ACCOUNT_STATE_REFRESHING;
    case AccountState::kNeedsPasscode: return v1::ACCOUNT_STATE_NEEDS_PASSCODE;
    case AccountState::kLoginFailed: return v1::ACCOUNT_STATE_LOGIN_FAILED;
    case AccountState::kUnreachable: return v1::ACCOUNT_STATE_UNREACHABLE;
  }
  return v1::ACCOUNT_STATE_UNSPECIFIED;
}

class AccountWatchHub::Watch : public grpc::ServerWriteReactor<v1::AccountEvent> {
 public:
  Watch(AccountWatchHub& hub, std::shared_ptr<const CallTicket> ticket) : hub_(hub), ticket_(std::move(ticket)) {}

  const Caller& caller() const { return ticket_->caller(); }

  void Push(v1::AccountEvent event) {
    absl::MutexLock lock(&mutex_);
    if (finished_) return;
    if (queue_.size() >= kMaxQueuedEvents) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "the watcher fell too far behind"));
      return;
    }
    queue_.push_back(std::move(event));
    if (queue_.size() == 1) StartWrite(&queue_.front());
  }

  void End() {
    absl::MutexLock lock(&mutex_);
    FinishLocked(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    queue_.pop_front();
    if (!queue_.empty() && !finished_) StartWrite(&queue_.front());
  }

  void OnCancel() override {
    absl::MutexLock lock(&mutex_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    hub_.Remove(this);
    delete this;
  }

 private:
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  AccountWatchHub& hub_;
  const std::shared_ptr<const CallTicket> ticket_;
  absl::Mutex mutex_;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  std::deque<v1::AccountEvent> queue_ ABSL_GUARDED_BY(mutex_);  // front() is being written
};

void AccountWatchHub::Publish(const AccountEvent& event) {
  v1::AccountEvent message;
  message.set_account(event.account);
  message.set_state(ToProto(event.state));
  message.set_message(event.message);
  *message.mutable_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(event.time.time_since_epoch()).count());
  auto policy = policy_.Get();
  absl::MutexLock lock(&mutex_);
  for (Watch* watch : watches_) {
    if (policy->AdmitsAccount(watch->caller(), event.account)) watch->Push(message);
  }
}

grpc::ServerWriteReactor<v1::AccountEvent>* AccountWatchHub::Open(std::shared_ptr<const CallTicket> ticket) {
  auto* watch = new Watch(*this, std::move(ticket));
  absl::MutexLock lock(&mutex_);
  watches_.insert(watch);
  return watch;
}

void AccountWatchHub::CloseAll() {
  absl::MutexLock lock(&mutex_);
  for (Watch* watch : watches_) watch->End();
}

void AccountWatchHub::Remove(Watch* watch) {
  absl::MutexLock lock(&mutex_);
  watches_.erase(watch);
}

}  // namespace stormbroker
