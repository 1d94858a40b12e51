// The smallest useful program with the client library: ping the Storm API
// through the broker.  Usage: client_example SOCKET [ACCOUNT]
#include <cstdio>

#include "stormbroker/client.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET [ACCOUNT]\n", argv[0]);
    return 2;
  }
  auto client = stormbroker::client::Client::Connect(argv[1]);
  auto outcome = client->Call(argc > 2 ? argv[2] : "", "Utilities/Info/ping", {});
  if (!outcome.ok()) {
    std::fprintf(stderr, "broker: %s\n", outcome.error().message.c_str());
    return 2;
  }
  if (outcome->api_error) {
    std::fprintf(stderr, "API: %s: %s\n", outcome->api_error->error_class.c_str(), outcome->api_error->message.c_str());
    return 3;
  }
  std::printf("%s\n", outcome->result.dump().c_str());
  return 0;
}
