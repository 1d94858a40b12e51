// What the doors tell one another through the wiring, so that no door
// includes another: the HTTPS proxy door's description, which the gRPC
// door's GetStatus reports to clients (stormctl env).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace stormbroker {

// Where the proxy door listens, for which hosts, and the CA its clients trust.
struct HttpsProxyDescription {
  std::string address;
  std::vector<std::string> hosts;
  std::string ca_certificate;  // PEM
};

// The proxy door's description now; nothing when it is not serving.
using DescribeHttpsProxy = std::function<std::optional<HttpsProxyDescription>()>;

}  // namespace stormbroker
