// The fleet section: the brokers of a build farm sharing one token per
// account through etcd (fleet/fleet.h).
#include <unistd.h>

#include <fstream>

#include "config/address.h"
#include "config/sections.h"
#include "secret/sealed_box.h"

namespace stormbroker::config {
namespace {

std::string ReadableFile(const YAML::Node& node, const std::string& path) {
  std::string file = Scalar(node, path);
  if (!std::ifstream(file)) Fail(node, "cannot read " + path + " " + file);
  return file;
}

const Keys<FleetConfig>& EtcdKeys() {
  static const Keys<FleetConfig> keys = {
      Field("endpoints", &FleetConfig::endpoints,
            [](const YAML::Node& node, const std::string& path) {
              if (!node.IsSequence() || node.size() == 0) {
                Fail(node, path + " must list the etcd members, e.g. [https://10.0.0.1:2379]");
              }
              std::vector<EtcdEndpoint> endpoints;
              for (const auto& entry : node) endpoints.push_back(ParseEtcdEndpoint(entry, path));
              for (const auto& endpoint : endpoints) {
                if (endpoint.tls != endpoints.front().tls) Fail(node, path + " must be all https:// or all http://");
              }
              return endpoints;
            },
            ""),
      Field("insecure", &FleetConfig::insecure, Boolean, ""),
      Field("ca_file", &FleetConfig::ca_file, ReadableFile, ""),
      Field("cert_file", &FleetConfig::client_cert_file, ReadableFile, ""),
      Field("key_file", &FleetConfig::client_key_file,
            [](const YAML::Node& node, const std::string& path) {
              std::string file = Scalar(node, path);
              if (auto key = ReadSecretFile(file); !key.ok()) Fail(node, key.status().message());
              return file;
            },
            ""),
      Field("username", &FleetConfig::username, Scalar, ""),  // needs password_file
      Field("password_file", &FleetConfig::password,
            [](const YAML::Node& node, const std::string& path) {
              auto password = ReadSecretFile(Scalar(node, path));
              if (!password.ok()) Fail(node, password.status().message());
              return std::move(password).value();
            },
            ""),
  };
  return keys;
}

// The etcd subsection as a whole: how this machine proves itself.
void CheckEtcd(const YAML::Node& etcd, FleetConfig& fleet) {
  const std::string path = "fleet.etcd";
  if (!etcd["endpoints"]) Fail(etcd, path + ".endpoints must list the etcd members, e.g. [https://10.0.0.1:2379]");
  bool tls = fleet.endpoints.front().tls;
  if (!tls && !fleet.insecure) {
    Fail(etcd["endpoints"], path + ".endpoints: plain http:// lets anyone on this machine who can reach etcd "
                            "rewrite the fleet's records unless etcd authenticates its clients; use https:// with "
                            "fleet.etcd.cert_file and key_file, or say fleet.etcd.insecure: true");
  }
  if (static_cast<bool>(etcd["username"]) != static_cast<bool>(etcd["password_file"])) {
    Fail(etcd["username"] ? etcd["username"] : etcd["password_file"],
         path + ".username and " + path + ".password_file go together (etcd's own authentication)");
  }
  bool certificate = !fleet.client_cert_file.empty() || !fleet.client_key_file.empty();
  if (certificate && (fleet.client_cert_file.empty() || fleet.client_key_file.empty())) {
    Fail(etcd, path + ".cert_file and " + path + ".key_file go together");
  }
  if (tls && fleet.username.empty() && !certificate) {
    Fail(etcd, path + " needs cert_file and key_file (etcd over https:// takes this machine's client "
                      "certificate), or username and password_file (etcd's own authentication)");
  }
  if (!tls && (certificate || !fleet.ca_file.empty())) Fail(etcd, path + "'s certificate files need https:// endpoints");
}

}  // namespace

const Keys<FleetConfig>& FleetKeys() {
  static const Keys<FleetConfig> keys = {
      Field("name", &FleetConfig::name,
            [](const YAML::Node& node, const std::string& path) {
              std::string name = Scalar(node, path);
              if (!IsValidAccountName(name)) {
                Fail(node, path + " '" + name + "' must be 1-64 letters, digits, '_', '-' or '.'");
              }
              return name;
            },
            "build-99"),
      Field("prefix", &FleetConfig::prefix,
            [](const YAML::Node& node, const std::string& path) {
              std::string prefix = Scalar(node, path);
              if (prefix.front() != '/') Fail(node, path + " must start with '/', e.g. /stormbroker/farm-a");
              while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
              return prefix;
            },
            "/stormbroker/other"),
      Field("key_file", &FleetConfig::sealing_key,
            [](const YAML::Node& node, const std::string& path) {
              auto key = ReadFleetKey(Scalar(node, path));
              if (!key.ok()) Fail(node, key.status().message());
              return std::move(key).value();
            },
            ""),
      Nested("etcd", EtcdKeys()),
      Field("lease_ttl", &FleetConfig::lease_ttl,
            [](const YAML::Node& node, const std::string& path) {
              auto ttl = Duration(node, path, std::chrono::seconds(2), std::chrono::minutes(1));
              if (ttl.count() % 1000 != 0) Fail(node, path + " must be whole seconds (etcd's unit)");
              return ttl;
            },
            "10s"),
      Field("retire_grace", &FleetConfig::retire_grace,
            [](const YAML::Node& node, const std::string& path) {
              return Duration(node, path, std::chrono::seconds(1), std::chrono::minutes(30));
            },
            "2m"),
  };
  return keys;
}

FleetConfig ParseFleet(const YAML::Node& node, const std::string& path) {
  FleetConfig fleet;
  fleet.enabled = true;
  ReadSection(node, path, FleetKeys(), fleet);
  if (!node["name"]) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || !*host) Fail(node, path + ".name is required (no host name)");
    fleet.name = host;
    if (!IsValidAccountName(fleet.name)) {
      Fail(node, path + ".name: the host name '" + fleet.name + "' is not 1-64 letters, digits, '_', '-' or '.'");
    }
  }
  if (!node["key_file"]) {
    Fail(node, path + ".key_file is required: the 32-byte key the fleet's machines share (make one with "
                      "`openssl rand -hex 32`, and copy it to each machine, readable only by the daemon)");
  }
  if (!node["etcd"]) Fail(node, path + ".etcd is required (endpoints: [https://HOST:2379, ...])");
  CheckEtcd(node["etcd"], fleet);
  return fleet;
}

}  // namespace stormbroker::config
