#include "doors/grpc/thread_nudge.h"

#include <grpcpp/generic/generic_stub.h>
#include <absl/synchronization/mutex.h>

namespace stormbroker {
namespace {

constexpr std::chrono::milliseconds kEvery{500};
constexpr const char* kHealthCheck = "/grpc.health.v1.Health/Check";

// One check: what gRPC fills in must live until its callback has run.
struct Check {
  grpc::ClientContext context;
  grpc::Slice empty;
  // One empty slice: an encoded HealthCheckRequest{service: ""}. (A
  // ByteBuffer with no slice at all is no message, and gRPC aborts.)
  grpc::ByteBuffer request{&empty, 1};
  grpc::ByteBuffer response;
};

}  // namespace

GrpcThreadNudge::GrpcThreadNudge(Scheduler& scheduler, grpc::Server& server)
    : scheduler_(scheduler),
      channel_(server.InProcessChannel(grpc::ChannelArguments())),
      stub_(std::make_unique<grpc::GenericStub>(channel_)) {}

GrpcThreadNudge::~GrpcThreadNudge() { Stop(); }

void GrpcThreadNudge::Start() {
  absl::MutexLock lock(&mutex_);
  next_ = scheduler_.RunAt(scheduler_.Now() + kEvery, [this] { Tick(); });
}

void GrpcThreadNudge::Tick() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopped_) return;
    next_ = scheduler_.RunAt(scheduler_.Now() + kEvery, [this] { Tick(); });
    if (in_flight_) return;  // the last one has not come back: no pile-up
    in_flight_ = true;
  }
  // Outside the lock: gRPC may run the callback before UnaryCall returns.
  auto check = std::make_shared<Check>();
  check->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  stub_->UnaryCall(&check->context, kHealthCheck, grpc::StubOptions(), &check->request, &check->response,
                   [this, check](grpc::Status) {
                     absl::MutexLock done(&mutex_);
                     in_flight_ = false;
                   });
}

void GrpcThreadNudge::Stop() {
  absl::MutexLock lock(&mutex_);
  if (stopped_) return;
  stopped_ = true;
  scheduler_.Cancel(next_);
  mutex_.AwaitWithTimeout(absl::Condition(+[](bool* in_flight) { return !*in_flight; }, &in_flight_),
                          absl::Seconds(6));
}

}  // namespace stormbroker
