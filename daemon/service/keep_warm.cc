#include "service/keep_warm.h"

#include <grpcpp/generic/generic_stub.h>

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

GrpcKeepWarm::GrpcKeepWarm(Scheduler& scheduler, grpc::Server& server)
    : scheduler_(scheduler),
      channel_(server.InProcessChannel(grpc::ChannelArguments())),
      stub_(std::make_unique<grpc::GenericStub>(channel_)) {}

GrpcKeepWarm::~GrpcKeepWarm() { Stop(); }

void GrpcKeepWarm::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  next_ = scheduler_.RunAt(scheduler_.Now() + kEvery, [this] { Tick(); });
}

void GrpcKeepWarm::Tick() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
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
                     std::lock_guard<std::mutex> done(mutex_);
                     in_flight_ = false;
                     idle_.notify_all();
                   });
}

void GrpcKeepWarm::Stop() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  scheduler_.Cancel(next_);
  idle_.wait_for(lock, std::chrono::seconds(6), [&] { return !in_flight_; });
}

}  // namespace stormbroker
