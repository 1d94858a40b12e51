// Keeps gRPC's callback threads from dozing off.
//
// gRPC 1.51 runs callback-API work on two "nexting" threads that also poll
// the sockets. Each one, after a second without work, sleeps 100 ms before it
// polls again (CallbackAlternativeCQ in completion_queue_cc.cc). In an idle
// daemon the two doze together, so a call that arrives a second after the
// last one waited up to 100 ms (53 ms at the median, measured) before gRPC
// even read it. A health check over an in-process channel every 500 ms
// keeps one of them awake: whichever took the latest check has more than
// half a second left before its own timeout, so the two never doze at once.
// It costs about 0.25 % of a core while the daemon is idle (measured).
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <absl/synchronization/mutex.h>

#include "runtime/scheduler.h"

namespace stormbroker {

class GrpcThreadNudge {
 public:
  GrpcThreadNudge(Scheduler& scheduler, grpc::Server& server);
  // Stop() if not done yet.
  ~GrpcThreadNudge();
  GrpcThreadNudge(const GrpcThreadNudge&) = delete;
  GrpcThreadNudge& operator=(const GrpcThreadNudge&) = delete;

  void Start() ABSL_LOCKS_EXCLUDED(mutex_);
  // No further checks; waits (a bounded time) for the one in flight.
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  void Tick() ABSL_LOCKS_EXCLUDED(mutex_);

  Scheduler& scheduler_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  absl::Mutex mutex_;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  bool in_flight_ ABSL_GUARDED_BY(mutex_) = false;
  Scheduler::TaskId next_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace stormbroker
