#include "doors/grpc/self_test.h"

#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/create_channel_posix.h>

#include "doors/grpc/unix_listener.h"
#include "stormbroker/v1/broker.grpc.pb.h"

namespace stormbroker {

Status CheckPeerIdentification(grpc::Server* server, BrokerCore* core) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    return Internal("self-test: socketpair failed");
  }
  if (Status adopted = AdoptConnection(pair[0], server, core); !adopted.ok()) {
    close(pair[1]);
    return Internal("self-test: " + adopted.message());
  }
  auto channel = grpc::CreateInsecureChannelFromFd("self-test", pair[1]);
  auto stub = v1::Broker::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListAccountsResponse response;
  grpc::Status status = stub->ListAccounts(&context, v1::ListAccountsRequest(), &response);
  if (!status.ok()) {
    return Internal("self-test: this gRPC build does not report the peer of an accepted connection "
                    "as \"fd:N\" (" + status.error_message() +
                    "); refusing to serve callers that cannot be identified");
  }
  return Status::Ok();
}

}  // namespace stormbroker
