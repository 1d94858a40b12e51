#include "config/address.h"

#include <arpa/inet.h>

#include <cstdlib>

#include "config/yaml_reader.h"
#include "net/loopback.h"

namespace stormbroker::config {
namespace {

// Strips the brackets of "[::1]".
std::string Unbracketed(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

// A port from 1 to 65535; nothing otherwise.
std::optional<uint16_t> Port(const std::string& text) {
  char* end = nullptr;
  long number = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || number < 1 || number > 65535) return std::nullopt;
  return static_cast<uint16_t>(number);
}

}  // namespace

TcpAddress HostPort(const YAML::Node& node, const std::string& what, const std::string& example,
                    const char* default_host) {
  std::string text = Scalar(node, what);
  auto bad = [&](const std::string& why) { Fail(node, what + " " + why + "; write " + example); };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos && !default_host) bad("has no port");
  TcpAddress address;
  address.host = Unbracketed(colon == std::string::npos ? "" : text.substr(0, colon));
  if (address.host.empty() && default_host) address.host = default_host;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address.host.c_str(), &v4) != 1 && inet_pton(AF_INET6, address.host.c_str(), &v6) != 1) {
    bad("does not start with a numeric address");
  }
  auto port = Port(colon == std::string::npos ? text : text.substr(colon + 1));
  if (!port) bad("needs a port from 1 to 65535");
  address.port = *port;
  return address;
}

TcpAddress LoopbackAddress(const YAML::Node& node, const std::string& what, const char* default_host) {
  const std::string example =
      std::string("127.0.0.1:PORT or [::1]:PORT") + (default_host ? " or a port alone" : "") +
      " (loopback only: the broker learns who is calling from the kernel, which knows that only for connections "
      "on this machine)";
  TcpAddress address = HostPort(node, what, example, default_host);
  if (!IsLoopbackAddress(address.host)) Fail(node, what + " is not a loopback address; write " + example);
  return address;
}

EtcdEndpoint ParseEtcdEndpoint(const YAML::Node& node, const std::string& what) {
  std::string text = Scalar(node, what);
  EtcdEndpoint endpoint;
  std::string rest;
  if (text.rfind("https://", 0) == 0) {
    rest = text.substr(8);
  } else if (text.rfind("http://", 0) == 0) {
    endpoint.tls = false;
    rest = text.substr(7);
  } else {
    Fail(node, what + ": '" + text + "' must start with https:// (or http:// to a loopback address)");
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) Fail(node, what + ": '" + text + "' needs HOST:PORT");
  endpoint.host = Unbracketed(rest.substr(0, colon));
  auto port = Port(rest.substr(colon + 1));
  if (!port) Fail(node, what + ": '" + text + "' needs a port from 1 to 65535");
  endpoint.port = *port;
  if (!endpoint.tls && !IsLoopbackAddress(endpoint.host)) {
    Fail(node, what + ": '" + text + "': plain http:// is allowed only to a loopback address; use https:// with "
                                     "fleet.etcd.cert_file and key_file");
  }
  return endpoint;
}

bool IsLoopbackUrl(const std::string& url) {
  std::string rest = url.substr(url.find("://") + 3);
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    size_t end = rest.find(']');
    if (end == std::string::npos) return false;
    host = rest.substr(1, end - 1);
  } else {
    host = rest.substr(0, rest.find_first_of(":/"));
  }
  return host == "localhost" || IsLoopbackAddress(host);
}

std::string SocketPath(const YAML::Node& node, const std::string& what) {
  std::string path = AbsolutePath(node, what);
  if (path.size() > 100) Fail(node, what + " is longer than a Unix socket path may be (100 bytes)");
  return path;
}

}  // namespace stormbroker::config
