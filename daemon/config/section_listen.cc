// The listen and metrics sections: where the broker serves.
#include <grp.h>

#include <cstdlib>
#include <fstream>


#include "config/address.h"
#include "config/sections.h"
#include "util/ascii.h"

namespace stormbroker::config {
namespace {

const Keys<ListenConfig>& HttpTlsKeys() {
  static const Keys<ListenConfig> keys = {
      Field("cert_file", &ListenConfig::http_tls_cert_file,
            [](const YAML::Node& node, const std::string& path) {
              std::string file = Scalar(node, path);
              if (!std::ifstream(file)) Fail(node, "cannot read " + path + " " + file);
              return file;
            },
            ""),
      Field("key_file", &ListenConfig::http_tls_key_file,
            [](const YAML::Node& node, const std::string& path) {
              std::string file = Scalar(node, path);
              auto key = ReadSecretFile(file);
              if (!key.ok()) Fail(node, key.status().message());
              return file;
            },
            ""),
  };
  return keys;
}

// A host name the proxy door serves: a DNS name (what the CA's name
// constraints permit), never an address.
std::string ProxyHost(const YAML::Node& node, const std::string& path) {
  std::string host = AsciiLower(Scalar(node, path));
  bool name_chars = !host.empty() && host.size() <= 253 && host.front() != '.' && host.back() != '.' &&
                    host.find("..") == std::string::npos &&
                    host.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos;
  bool all_digits = host.find_first_not_of("0123456789.") == std::string::npos;
  if (!name_chars || all_digits || host.find('.') == std::string::npos) {
    Fail(node, path + " must list DNS names such as api.stormondemand.com (not addresses): '" + host + "' is not one");
  }
  return host;
}

const Keys<ListenConfig>& HttpsProxyKeys() {
  static const Keys<ListenConfig> keys = {
      Field("address", &ListenConfig::https_proxy,
            [](const YAML::Node& node, const std::string& path) -> std::optional<TcpAddress> {
              return LoopbackAddress(node, path);
            },
            "127.0.0.1:8443"),
      Field("hosts", &ListenConfig::https_proxy_hosts,
            [](const YAML::Node& node, const std::string& path) {
              // One name alone may be written without the brackets.
              if (node.IsScalar()) return std::vector<std::string>{ProxyHost(node, path)};
              if (!node.IsSequence() || node.size() == 0) Fail(node, path + " must be a list of host names");
              std::vector<std::string> hosts;
              for (const YAML::Node& host : node) hosts.push_back(ProxyHost(host, path));
              return hosts;
            },
            "api.stormondemand.com"),
      Field("ca_cert_file", &ListenConfig::proxy_ca_cert_file, AbsolutePath, "/var/lib/other/proxy-ca.pem"),
      Field("ca_key_file", &ListenConfig::proxy_ca_key_file, AbsolutePath, "/var/lib/other/proxy-ca.key"),
  };
  return keys;
}

}  // namespace

const Keys<ListenConfig>& ListenKeys() {
  static const Keys<ListenConfig> keys = {
      Field("socket", &ListenConfig::socket_path, SocketPath, "/run/other/broker.sock"),
      Field("mode", &ListenConfig::mode,
            [](const YAML::Node& node, const std::string& path) {
              std::string text = Scalar(node, path);
              char* end = nullptr;
              long mode = std::strtol(text.c_str(), &end, 8);
              if (*end != '\0' || mode < 0 || mode > 0777) {
                Fail(node, path + " must be octal permission bits such as 0660");
              }
              return static_cast<mode_t>(mode);
            },
            "0600"),
      Field("group", &ListenConfig::group,
            [](const YAML::Node& node, const std::string& path) -> std::optional<gid_t> {
              std::string group = Scalar(node, path);
              struct group* gr = getgrnam(group.c_str());
              if (!gr) Fail(node, "unknown group '" + group + "' for " + path + ": create it (groupadd) first");
              return gr->gr_gid;
            },
            "root"),
      Field("http_socket", &ListenConfig::http_socket, SocketPath, "/run/other/http.sock"),
      Field("http", &ListenConfig::http,
            [](const YAML::Node& node, const std::string& path) -> std::optional<TcpAddress> {
              return LoopbackAddress(node, path);
            },
            "127.0.0.1:8089"),
      Nested("http_tls", HttpTlsKeys()),
      Nested("https_proxy", HttpsProxyKeys()),
  };
  return keys;
}

ListenConfig ParseListen(const YAML::Node& node, const std::string& path) {
  ListenConfig listen;
  ReadSection(node, path, ListenKeys(), listen);
  if (!node["socket"]) Fail(node, path + ".socket is required: the path of the Unix socket to serve");
  if (!listen.http_socket.empty() && listen.http_socket == listen.socket_path) {
    Fail(node["http_socket"], path + ".http_socket must be another path than " + path + ".socket");
  }
  if (const YAML::Node tls = node["http_tls"]) {
    if (!listen.http) Fail(tls, path + ".http_tls needs " + path + ".http: TLS is served on the loopback TCP door");
    if (!tls["cert_file"] || !tls["key_file"]) Fail(tls, path + ".http_tls needs cert_file and key_file (PEM)");
  }
  if (listen.https_proxy && listen.http && listen.https_proxy->port == listen.http->port &&
      listen.https_proxy->host == listen.http->host) {
    Fail(node["https_proxy"]["address"], path + ".https_proxy.address must differ from " + path + ".http");
  }
  return listen;
}

const Keys<MetricsConfig>& MetricsKeys() {
  static const Keys<MetricsConfig> keys = {
      // Loopback only: the endpoint answers only local users that a policy
      // rule with metrics: true names, which the kernel tells only for
      // loopback connections. A Prometheus elsewhere scrapes the node
      // exporter's textfile collector.
      Field("listen", &MetricsConfig::listen,
            [](const YAML::Node& node, const std::string& path) -> std::optional<TcpAddress> {
              return LoopbackAddress(node, path, "127.0.0.1");
            },
            "127.0.0.1:9848"),
      Field("textfile", &MetricsConfig::textfile,
            [](const YAML::Node& node, const std::string& path) {
              std::string file = AbsolutePath(node, path);
              if (file.size() < 5 || file.substr(file.size() - 5) != ".prom") {
                Fail(node, path + " must end in .prom (the node exporter reads only those)");
              }
              return file;
            },
            "/var/lib/prometheus/node-exporter/stormbroker.prom"),
      Field("interval", &MetricsConfig::interval,
            [](const YAML::Node& node, const std::string& path) {
              return Duration(node, path, std::chrono::seconds(1), std::chrono::hours(1));
            },
            "30s"),
  };
  return keys;
}

MetricsConfig ParseMetrics(const YAML::Node& node, const std::string& path) {
  MetricsConfig metrics;
  ReadSection(node, path, MetricsKeys(), metrics);
  return metrics;
}

}  // namespace stormbroker::config
