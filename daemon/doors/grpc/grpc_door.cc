#include "doors/grpc/grpc_door.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <spdlog/spdlog.h>

#include "doors/grpc/goaway.h"
#include "doors/grpc/self_test.h"

namespace stormbroker {

GrpcDoor::GrpcDoor(BrokerCore& core, AccountWatchHub& watches, AuditLog& audit, const HttpEngine& engine,
                   const Fleet* fleet, DescribeHttpsProxy describe_proxy, ConnectionTable& connections,
                   Scheduler& scheduler, std::vector<std::string> accounts)
    : core_(core),
      connections_(connections),
      scheduler_(scheduler),
      accounts_(std::move(accounts)),
      service_(core, watches, audit, engine, fleet, std::move(describe_proxy)),
      health_(core) {}

Status GrpcDoor::Start(const Config& config, const PassedSockets& passed) {
  if (Status built = Build(config.limits); !built.ok()) return built;
  return Listen(config.listen, passed.grpc);
}

Status GrpcDoor::Build(const LimitsConfig& limits) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.RegisterService(&service_);
  builder.RegisterService(&health_);
  // Bigger messages are refused before they reach a handler; clients queue
  // calls beyond a connection's share instead of having them refused.
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits.max_request_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, static_cast<int>(limits.calls_per_connection));
  server_ = builder.BuildAndStart();
  if (!server_) return Unavailable("gRPC server failed to start");
  health_.Set("", true);
  health_.Set("stormbroker.v1.Broker", true);
  for (const std::string& account : accounts_) SetAccountHealth(account, false);
  return CheckPeerIdentification(server_.get(), &core_);
}

Status GrpcDoor::Listen(const ListenConfig& listen, std::optional<int> passed) {
  auto listener = passed ? UnixListener::Adopt(*passed) : UnixListener::Open(listen);
  if (!listener.ok()) return listener.status();
  listener_ = std::move(listener).value();
  handed_over_by_systemd_ = passed.has_value();
  if (Status accepting = listener_->Start(server_.get(), &connections_, &core_); !accepting.ok()) return accepting;
  nudge_ = std::make_unique<GrpcThreadNudge>(scheduler_, *server_);
  nudge_->Start();
  where_ = passed ? "gRPC door on the socket systemd passed (listen.socket is not used)"
                  : "gRPC door on " + listen.socket_path;
  return Status::Ok();
}

std::string GrpcDoor::Describe() const { return where_; }

void GrpcDoor::SetAccountHealth(const std::string& account, bool serving) {
  health_.Set(HealthService::AccountName(account), serving);
}

void GrpcDoor::SetFleetHealth(bool connected) { health_.Set(HealthService::kFleet, connected); }

void GrpcDoor::GoAway() {
  if (server_) SendGoaways(*server_);
}

void GrpcDoor::StopAccepting() {
  if (listener_) listener_->Stop();
}

void GrpcDoor::StopServing() {
  if (nudge_) nudge_->Stop();
  health_.Shutdown();
}

void GrpcDoor::Stop(std::chrono::system_clock::time_point deadline) {
  if (!server_) return;
  server_->Shutdown(deadline);
  server_->Wait();
}

}  // namespace stormbroker
