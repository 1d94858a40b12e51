// Addresses as the config file writes them: listening addresses, etcd
// endpoints, the upstream's URL. What counts as loopback is net/loopback's
// one predicate.
#pragma once

#include <string>

#include <yaml-cpp/yaml.h>

#include "config/config.h"

namespace stormbroker::config {

// "HOST:PORT" or "[V6HOST]:PORT" with a numeric host; with `default_host`,
// also a bare PORT. `example` shows the shape in the message.
TcpAddress HostPort(const YAML::Node& node, const std::string& what, const std::string& example,
                    const char* default_host = nullptr);
// HostPort on loopback only ("127.0.0.1:8080", "[::1]:8080"; a bare port
// with `default_host`): only for a loopback connection can the kernel say
// which local user is calling. `why` says what else the door needs.
TcpAddress LoopbackAddress(const YAML::Node& node, const std::string& what, const char* default_host = nullptr);
// https://HOST:PORT, or http://HOST:PORT to a loopback address.
EtcdEndpoint ParseEtcdEndpoint(const YAML::Node& node, const std::string& what);
// Whether `url` (http://HOST[:PORT]/...) names this machine: "localhost" or
// a loopback address.
bool IsLoopbackUrl(const std::string& url);
// An absolute path short enough for a Unix socket.
std::string SocketPath(const YAML::Node& node, const std::string& what);

}  // namespace stormbroker::config
