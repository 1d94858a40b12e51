#include "doors/grpc/health_service.h"

#include <optional>

#include "doors/grpc/broker_service.h"
#include "doors/grpc/grpc_peer.h"
#include <absl/synchronization/mutex.h>

namespace stormbroker {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr std::string_view kAccountPrefix = "account:";

}  // namespace

// One Watch stream: the status when it opens, then each change. Only the
// latest status matters, so at most one waits behind the one being written.
class HealthService::Watcher : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService& health, std::string service, bool visible, std::shared_ptr<const CallTicket> ticket)
      : health_(health), service_(std::move(service)), visible_(visible), ticket_(std::move(ticket)) {}

  const std::string& service() const { return service_; }
  bool visible() const { return visible_; }

  void Push(ServingStatus status) {
    absl::MutexLock lock(&mutex_);
    if (finished_) return;
    if (writing_) {
      pending_ = status;
      return;
    }
    WriteLocked(status);
  }

  void End() {
    absl::MutexLock lock(&mutex_);
    if (!finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    writing_ = false;
    if (!ok) {
      if (!finished_) {
        finished_ = true;
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      }
      return;
    }
    if (pending_ && !finished_) {
      ServingStatus next = *pending_;
      pending_.reset();
      WriteLocked(next);
    }
  }

  void OnCancel() override { End(); }

  void OnDone() override {
    health_.Remove(this);
    delete this;
  }

 private:
  void WriteLocked(ServingStatus status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (status == last_) return;
    last_ = status;
    message_.set_status(status);
    writing_ = true;
    StartWrite(&message_);
  }

  HealthService& health_;
  const std::string service_;
  const bool visible_;
  const std::shared_ptr<const CallTicket> ticket_;  // its place among the caller's calls
  absl::Mutex mutex_;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  std::optional<ServingStatus> pending_ ABSL_GUARDED_BY(mutex_);
  std::optional<ServingStatus> last_ ABSL_GUARDED_BY(mutex_);
  HealthCheckResponse message_ ABSL_GUARDED_BY(mutex_);
};

void HealthService::Set(const std::string& service, bool serving) {
  absl::MutexLock lock(&mutex_);
  if (shut_down_) return;
  auto [it, created] = serving_.try_emplace(service, serving);
  if (!created && it->second == serving) return;
  it->second = serving;
  for (Watcher* watcher : watchers_) {
    if (watcher->service() == service) watcher->Push(StatusLocked(service, watcher->visible()));
  }
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mutex_);
  shut_down_ = true;
  for (Watcher* watcher : watchers_) {
    watcher->Push(HealthCheckResponse::NOT_SERVING);
    watcher->End();
  }
}

HealthService::ServingStatus HealthService::StatusLocked(const std::string& service, bool visible) const {
  auto found = serving_.find(service);
  if (!visible || found == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return found->second && !shut_down_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

bool HealthService::Visible(const Caller* caller, const std::string& service) const {
  if (service.rfind(kAccountPrefix, 0) != 0) return true;  // the broker as a whole
  return caller && core_.MayUse(*caller, service.substr(kAccountPrefix.size()));
}

std::optional<Request> HealthService::Begin(grpc::CallbackServerContext* context, Status* refusal) {
  // An in-process call (the daemon's own keep-warm) has no connection: it
  // sees the broker as a whole.
  std::optional<int> fd = ConnectionFdOf(context->peer());
  if (!fd) return std::nullopt;
  Result<Request> request = core_.Begin(*fd, DoorKind::kGrpc, Rpc::kHealth, /*drains=*/false);
  if (!request.ok()) {
    *refusal = request.status();
    return std::nullopt;
  }
  return std::move(request).value();
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request, HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status refusal;
  std::optional<Request> admitted = Begin(context, &refusal);
  if (!refusal.ok()) {
    reactor->Finish(ToGrpc(refusal));
    return reactor;
  }
  bool visible = Visible(admitted ? &admitted->caller() : nullptr, request->service());
  ServingStatus status;
  {
    absl::MutexLock lock(&mutex_);
    status = StatusLocked(request->service(), visible);
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
  } else {
    response->set_status(status);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(grpc::CallbackServerContext* context,
                                                                    const HealthCheckRequest* request) {
  Status refusal;
  std::optional<Request> admitted = Begin(context, &refusal);
  bool visible = Visible(admitted ? &admitted->caller() : nullptr, request->service());
  auto* watcher = new Watcher(*this, request->service(), visible, admitted ? admitted->ticket() : nullptr);
  if (!refusal.ok()) {
    watcher->Finish(ToGrpc(refusal));
    return watcher;  // never added: OnDone's Remove finds nothing
  }
  absl::MutexLock lock(&mutex_);
  watchers_.insert(watcher);
  watcher->Push(StatusLocked(request->service(), visible));
  if (shut_down_) watcher->End();
  return watcher;
}

void HealthService::Remove(Watcher* watcher) {
  absl::MutexLock lock(&mutex_);
  watchers_.erase(watcher);
}

}  // namespace stormbroker
