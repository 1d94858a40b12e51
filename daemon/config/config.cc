#include "config/config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>

#include <yaml-cpp/yaml.h>

#include "config/byte_size.h"
#include "units/duration.h"
#include "net/loopback.h"
#include "fleet/sealed_box.h"
#include "secret/base32.h"

namespace stormbroker {
namespace {

// Thrown only inside this file, to unwind from deep in the tree to LoadConfig,
// which turns it into a Status.
struct ConfigError {
  int line;  // 1-based; 0 when the whole file is at fault
  std::string message;
};

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

// Warnings of the load under way, with their line (LoadConfig adds the file).
struct Warning {
  int line;
  std::string message;
};
thread_local std::vector<Warning>* warnings = nullptr;

void Warn(const YAML::Node& node, std::string message) {
  if (warnings) warnings->push_back({LineOf(node), std::move(message)});
}

[[noreturn]] void Fail(const YAML::Node& node, std::string message) {
  throw ConfigError{LineOf(node), std::move(message)};
}

void RequireMap(const YAML::Node& node, const std::string& what) {
  if (!node.IsMap()) Fail(node, what + " must be a mapping of keys to values");
}

// Rejects keys the daemon does not know: a typo must not silently fall back to
// a default.
void RejectUnknownKeys(const YAML::Node& map, const std::string& where,
                       std::initializer_list<const char*> known) {
  for (const auto& entry : map) {
    std::string key = entry.first.as<std::string>();
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; })) {
      std::string list;
      for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
      Fail(entry.first, "unknown key '" + key + "' in " + where + " (known keys: " + list + ")");
    }
  }
}

std::string Scalar(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) Fail(node, what + " must be a single value");
  std::string value = node.as<std::string>();
  if (value.empty()) Fail(node, what + " must not be empty");
  return value;
}

std::chrono::milliseconds Duration(const YAML::Node& node, const std::string& what,
                                   std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto parsed = ParseDuration(Scalar(node, what));
  if (!parsed.ok()) Fail(node, what + ": " + parsed.status().message());
  if (*parsed < min || *parsed > max) {
    Fail(node, what + " must be between " + std::to_string(min.count() / 1000.0) + "s and " +
                   std::to_string(max.count() / 1000) + "s");
  }
  return *parsed;
}

bool Boolean(const YAML::Node& node, const std::string& what) {
  std::string value = Scalar(node, what);
  if (value != "true" && value != "false") Fail(node, what + " must be true or false");
  return value == "true";
}

// A whole number from `low` to `high`; `unit` says what it counts.
unsigned long Count(const YAML::Node& node, const std::string& what, unsigned long low, unsigned long high,
                    const std::string& unit) {
  std::string text = Scalar(node, what);
  char* end = nullptr;
  unsigned long value = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || text[0] == '-' || value < low || value > high) {
    Fail(node, what + " must be a number of " + unit + " from " + std::to_string(low) + " to " + std::to_string(high));
  }
  return value;
}

size_t ByteSize(const YAML::Node& node, const std::string& what, size_t low, size_t high) {
  auto parsed = ParseByteSize(Scalar(node, what));
  if (!parsed.ok()) Fail(node, what + ": " + parsed.status().message());
  if (*parsed < low || *parsed > high) {
    Fail(node, what + " must be between " + std::to_string(low) + " and " + std::to_string(high) + " bytes");
  }
  return *parsed;
}

AuditConfig ParseAudit(const YAML::Node& node) {
  RequireMap(node, "audit");
  RejectUnknownKeys(node, "audit", {"file", "queue", "queue_bytes", "refusal_rate", "refusal_burst"});
  AuditConfig audit;
  if (node["file"]) {
    audit.file = Scalar(node["file"], "audit.file");
    if (audit.file.front() != '/') Fail(node["file"], "audit.file must be an absolute path");
  }
  if (node["queue"]) audit.queue = Count(node["queue"], "audit.queue", 1, 1'000'000, "records");
  if (node["queue_bytes"]) audit.queue_bytes = ByteSize(node["queue_bytes"], "audit.queue_bytes", 64 << 10, 1 << 30);
  if (node["refusal_rate"]) {
    audit.refusal_rate = Count(node["refusal_rate"], "audit.refusal_rate", 1, 100'000, "records a second");
  }
  if (node["refusal_burst"]) {
    audit.refusal_burst = Count(node["refusal_burst"], "audit.refusal_burst", 1, 1'000'000, "records");
  }
  return audit;
}

LimitsConfig ParseLimits(const YAML::Node& node) {
  RequireMap(node, "limits");
  RejectUnknownKeys(node, "limits",
                    {"max_request_size", "max_params_size", "body_bytes_per_uid", "connections", "connections_per_uid", "calls_per_connection",
                     "calls_per_uid", "idle_timeout", "first_request_timeout", "reserved_descriptors"});
  LimitsConfig limits;
  if (node["max_request_size"]) {
    limits.max_request_bytes = ByteSize(node["max_request_size"], "limits.max_request_size", 4 << 10, 64 << 20);
  }
  if (node["max_params_size"]) {
    limits.max_params_bytes = ByteSize(node["max_params_size"], "limits.max_params_size", 1 << 10, 64 << 20);
  }
  if (node["body_bytes_per_uid"]) {
    limits.body_bytes_per_uid = ByteSize(node["body_bytes_per_uid"], "limits.body_bytes_per_uid", 64 << 10, 1 << 30);
  }
  auto count = [&](const char* key, size_t* value, unsigned long high, const char* unit) {
    if (node[key]) *value = Count(node[key], std::string("limits.") + key, 1, high, unit);
  };
  count("connections", &limits.connections, 1'000'000, "connections");
  count("connections_per_uid", &limits.connections_per_uid, 1'000'000, "connections");
  count("calls_per_connection", &limits.calls_per_connection, 100'000, "calls");
  count("calls_per_uid", &limits.calls_per_uid, 1'000'000, "calls");
  count("reserved_descriptors", &limits.reserved_descriptors, 100'000, "descriptors");
  if (node["idle_timeout"]) {
    limits.idle_timeout =
        Duration(node["idle_timeout"], "limits.idle_timeout", std::chrono::seconds(1), std::chrono::hours(24));
  }
  if (node["first_request_timeout"]) {
    limits.first_request_timeout = Duration(node["first_request_timeout"], "limits.first_request_timeout",
                                            std::chrono::milliseconds(100), std::chrono::minutes(10));
  }
  if (limits.connections_per_uid > limits.connections) {
    Fail(node["connections_per_uid"], "limits.connections_per_uid must not exceed limits.connections (" +
                                          std::to_string(limits.connections) + ")");
  }
  return limits;
}

// Plain HTTP carries the password in clear text: only to this machine.
bool IsLoopbackHost(const std::string& url) {
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

// The state directory holds tokens: whoever can write it can swap them.
void CheckStateDir(const YAML::Node& node, const std::string& dir) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) return;  // created 0700 at start
  if (!S_ISDIR(st.st_mode)) Fail(node, "state_dir " + dir + " exists and is not a directory");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    Fail(node, "state_dir " + dir + " is writable by other users, who could swap its tokens: run chmod 700 " + dir);
  }
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    Fail(node, "state_dir " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                   ", not to the daemon's user: run chown " + std::to_string(geteuid()) + " " + dir);
  }
}

std::vector<std::string> StringList(const YAML::Node& node, const std::string& what) {
  if (!node.IsSequence()) Fail(node, what + " must be a list, e.g. [a, b]");
  std::vector<std::string> out;
  for (const auto& item : node) out.push_back(Scalar(item, "each entry of " + what));
  return out;
}

std::string SocketPath(const YAML::Node& node, const std::string& what) {
  std::string path = Scalar(node, what);
  if (path.front() != '/') Fail(node, what + " must be an absolute path");
  if (path.size() > 100) Fail(node, what + " is longer than a Unix socket path may be (100 bytes)");
  return path;
}

// "HOST:PORT" or "[V6HOST]:PORT" with a numeric host; with `default_host`,
// also a bare PORT. `example` shows the shape in the message.
TcpAddress HostPort(const YAML::Node& node, const std::string& what, const std::string& example,
                    const char* default_host = nullptr) {
  std::string text = Scalar(node, what);
  auto bad = [&](const std::string& why) { Fail(node, what + " " + why + "; write " + example); };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos && !default_host) bad("has no port");
  TcpAddress address;
  address.host = colon == std::string::npos ? "" : text.substr(0, colon);
  if (address.host.size() > 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  if (address.host.empty() && default_host) address.host = default_host;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address.host.c_str(), &v4) != 1 && inet_pton(AF_INET6, address.host.c_str(), &v6) != 1) {
    bad("does not start with a numeric address");
  }
  std::string port = colon == std::string::npos ? text : text.substr(colon + 1);
  char* end = nullptr;
  long number = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || number < 1 || number > 65535) bad("needs a port from 1 to 65535");
  address.port = static_cast<uint16_t>(number);
  return address;
}

// "127.0.0.1:8080" or "[::1]:8080". Any other address is refused: only for a
// loopback connection can the kernel say which local user is calling.
TcpAddress Loopback(const YAML::Node& node, const std::string& what) {
  const std::string example =
      "127.0.0.1:PORT or [::1]:PORT (loopback only: the broker learns who is calling from the kernel, which knows "
      "that only for connections on this machine)";
  TcpAddress address = HostPort(node, what, example);
  if (!IsLoopbackAddress(address.host)) Fail(node, what + " is not a loopback address; write " + example);
  return address;
}

// metrics: {listen: 127.0.0.1:9848, textfile: PATH, interval: 15s}. Another
// address than loopback works, with a warning: whoever reaches it reads the
// names of the accounts and methods.
MetricsConfig ParseMetrics(const YAML::Node& node) {
  RequireMap(node, "metrics");
  RejectUnknownKeys(node, "metrics", {"listen", "textfile", "interval"});
  MetricsConfig metrics;
  if (node["listen"]) {
    metrics.listen = HostPort(node["listen"], "metrics.listen", "127.0.0.1:9848, [::1]:9848 or a port alone (loopback)",
                              "127.0.0.1");
    if (!IsLoopbackAddress(metrics.listen->host)) {
      Fail(node["listen"], "metrics.listen is not a loopback address: the endpoint answers only local users that "
                           "a policy rule with metrics: true names, which the kernel tells only for loopback "
                           "connections; a Prometheus elsewhere scrapes the node exporter's textfile collector "
                           "(metrics.textfile)");
    }
  }
  if (node["textfile"]) {
    metrics.textfile = Scalar(node["textfile"], "metrics.textfile");
    if (metrics.textfile.front() != '/') Fail(node["textfile"], "metrics.textfile must be an absolute path");
    if (metrics.textfile.size() < 5 || metrics.textfile.substr(metrics.textfile.size() - 5) != ".prom") {
      Fail(node["textfile"], "metrics.textfile must end in .prom (the node exporter reads only those)");
    }
  }
  if (node["interval"]) {
    metrics.interval = Duration(node["interval"], "metrics.interval", std::chrono::seconds(1), std::chrono::hours(1));
  }
  return metrics;
}

ListenConfig ParseListen(const YAML::Node& node) {
  RequireMap(node, "listen");
  RejectUnknownKeys(node, "listen", {"socket", "mode", "group", "http_socket", "http", "http_tls"});
  ListenConfig listen;
  if (!node["socket"]) Fail(node, "listen.socket is required: the path of the Unix socket to serve");
  listen.socket_path = SocketPath(node["socket"], "listen.socket");
  if (node["http_socket"]) {
    listen.http_socket = SocketPath(node["http_socket"], "listen.http_socket");
    if (listen.http_socket == listen.socket_path) {
      Fail(node["http_socket"], "listen.http_socket must be another path than listen.socket");
    }
  }
  if (node["http"]) listen.http = Loopback(node["http"], "listen.http");
  if (const YAML::Node tls = node["http_tls"]) {
    RequireMap(tls, "listen.http_tls");
    RejectUnknownKeys(tls, "listen.http_tls", {"cert_file", "key_file"});
    if (!listen.http) Fail(tls, "listen.http_tls needs listen.http: TLS is served on the loopback TCP door");
    if (!tls["cert_file"] || !tls["key_file"]) {
      Fail(tls, "listen.http_tls needs cert_file and key_file (PEM)");
    }
    listen.http_tls_cert_file = Scalar(tls["cert_file"], "listen.http_tls.cert_file");
    listen.http_tls_key_file = Scalar(tls["key_file"], "listen.http_tls.key_file");
    std::ifstream cert(listen.http_tls_cert_file);
    if (!cert) Fail(tls["cert_file"], "cannot read listen.http_tls.cert_file " + listen.http_tls_cert_file);
    auto key = ReadSecretFile(listen.http_tls_key_file);
    if (!key.ok()) Fail(tls["key_file"], key.status().message());
  }
  if (node["mode"]) {
    std::string text = Scalar(node["mode"], "listen.mode");
    char* end = nullptr;
    long mode = std::strtol(text.c_str(), &end, 8);
    if (*end != '\0' || mode < 0 || mode > 0777) {
      Fail(node["mode"], "listen.mode must be octal permission bits such as 0660");
    }
    listen.mode = static_cast<mode_t>(mode);
  }
  if (node["group"]) {
    std::string group = Scalar(node["group"], "listen.group");
    struct group* gr = getgrnam(group.c_str());
    if (!gr) Fail(node["group"], "unknown group '" + group + "' for listen.group: create it (groupadd) first");
    listen.group = gr->gr_gid;
  }
  return listen;
}

// http://HOST:PORT (loopback only) or https://HOST:PORT.
EtcdEndpoint ParseEtcdEndpoint(const YAML::Node& node, bool insecure) {
  const std::string what = "fleet.etcd.endpoints";
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
  endpoint.host = rest.substr(0, colon);
  if (endpoint.host.size() > 2 && endpoint.host.front() == '[' && endpoint.host.back() == ']') {
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
  }
  char* end = nullptr;
  std::string port = rest.substr(colon + 1);
  long number = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || number < 1 || number > 65535) {
    Fail(node, what + ": '" + text + "' needs a port from 1 to 65535");
  }
  endpoint.port = static_cast<uint16_t>(number);
  if (!endpoint.tls && !IsLoopbackAddress(endpoint.host)) {
    Fail(node, what + ": '" + text + "': plain http:// is allowed only to a loopback address; use https:// with "
                                     "fleet.etcd.cert_file and key_file");
  }
  if (!endpoint.tls && !insecure) {
    Fail(node, what + ": '" + text + "': plain http:// lets anyone on this machine who can reach etcd rewrite "
                                     "the fleet's records unless etcd authenticates its clients; use https:// "
                                     "with fleet.etcd.cert_file and key_file, or say fleet.etcd.insecure: true");
  }
  return endpoint;
}

FleetConfig ParseFleet(const YAML::Node& node) {
  RequireMap(node, "fleet");
  RejectUnknownKeys(node, "fleet", {"name", "prefix", "etcd", "key_file", "lease_ttl", "retire_grace"});
  FleetConfig fleet;
  fleet.enabled = true;
  if (node["name"]) {
    fleet.name = Scalar(node["name"], "fleet.name");
  } else {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || !*host) Fail(node, "fleet.name is required (no host name)");
    fleet.name = host;
  }
  if (!IsValidAccountName(fleet.name)) {
    Fail(node["name"] ? node["name"] : node, "fleet.name '" + fleet.name + "' must be 1-64 letters, digits, '_', '-' or '.'");
  }
  if (node["prefix"]) {
    fleet.prefix = Scalar(node["prefix"], "fleet.prefix");
    if (fleet.prefix.front() != '/') Fail(node["prefix"], "fleet.prefix must start with '/', e.g. /stormbroker/farm-a");
    while (fleet.prefix.size() > 1 && fleet.prefix.back() == '/') fleet.prefix.pop_back();
  }
  if (!node["key_file"]) {
    Fail(node, "fleet.key_file is required: the 32-byte key the fleet's machines share (make one with "
               "`openssl rand -hex 32`, and copy it to each machine, readable only by the daemon)");
  }
  auto key = ReadFleetKey(Scalar(node["key_file"], "fleet.key_file"));
  if (!key.ok()) Fail(node["key_file"], key.status().message());
  fleet.sealing_key = std::move(key).value();
  const YAML::Node etcd = node["etcd"];
  if (!etcd) Fail(node, "fleet.etcd is required (endpoints: [https://HOST:2379, ...])");
  RequireMap(etcd, "fleet.etcd");
  RejectUnknownKeys(etcd, "fleet.etcd",
                    {"endpoints", "insecure", "ca_file", "cert_file", "key_file", "username", "password_file"});
  if (!etcd["endpoints"] || !etcd["endpoints"].IsSequence() || etcd["endpoints"].size() == 0) {
    Fail(etcd, "fleet.etcd.endpoints must list the etcd members, e.g. [https://10.0.0.1:2379]");
  }
  fleet.insecure = etcd["insecure"] && Boolean(etcd["insecure"], "fleet.etcd.insecure");
  bool tls = false;
  for (const auto& entry : etcd["endpoints"]) {
    fleet.endpoints.push_back(ParseEtcdEndpoint(entry, fleet.insecure));
    tls = tls || fleet.endpoints.back().tls;
  }
  for (const auto& endpoint : fleet.endpoints) {
    if (endpoint.tls != tls) Fail(etcd["endpoints"], "fleet.etcd.endpoints must be all https:// or all http://");
  }
  auto readable = [&](const char* key, std::string* into) {
    if (!etcd[key]) return;
    *into = Scalar(etcd[key], std::string("fleet.etcd.") + key);
    std::ifstream file(*into);
    if (!file) Fail(etcd[key], std::string("cannot read fleet.etcd.") + key + " " + *into);
  };
  readable("ca_file", &fleet.ca_file);
  readable("cert_file", &fleet.client_cert_file);
  if (etcd["key_file"]) {
    fleet.client_key_file = Scalar(etcd["key_file"], "fleet.etcd.key_file");
    auto client_key = ReadSecretFile(fleet.client_key_file);
    if (!client_key.ok()) Fail(etcd["key_file"], client_key.status().message());
  }
  if (etcd["username"] || etcd["password_file"]) {
    if (!etcd["username"] || !etcd["password_file"]) {
      Fail(etcd["username"] ? etcd["username"] : etcd["password_file"], "fleet.etcd.username and fleet.etcd.password_file go together (etcd's own authentication)");
    }
    fleet.username = Scalar(etcd["username"], "fleet.etcd.username");
    auto password = ReadSecretFile(Scalar(etcd["password_file"], "fleet.etcd.password_file"));
    if (!password.ok()) Fail(etcd["password_file"], password.status().message());
    fleet.password = std::move(password).value();
  }
  bool certificate = !fleet.client_cert_file.empty() || !fleet.client_key_file.empty();
  if (tls && fleet.username.empty() && (fleet.client_cert_file.empty() || fleet.client_key_file.empty())) {
    Fail(etcd, "fleet.etcd needs cert_file and key_file (etcd over https:// takes this machine's client "
               "certificate), or username and password_file (etcd's own authentication)");
  }
  if (certificate && (fleet.client_cert_file.empty() || fleet.client_key_file.empty())) {
    Fail(etcd, "fleet.etcd.cert_file and fleet.etcd.key_file go together");
  }
  if (!tls && (certificate || !fleet.ca_file.empty())) {
    Fail(etcd, "fleet.etcd's certificate files need https:// endpoints");
  }
  if (node["lease_ttl"]) {
    fleet.lease_ttl = Duration(node["lease_ttl"], "fleet.lease_ttl", std::chrono::seconds(2), std::chrono::minutes(1));
    if (fleet.lease_ttl.count() % 1000 != 0) Fail(node["lease_ttl"], "fleet.lease_ttl must be whole seconds (etcd's unit)");
  }
  if (node["retire_grace"]) {
    fleet.retire_grace = Duration(node["retire_grace"], "fleet.retire_grace", std::chrono::seconds(1),
                                  std::chrono::minutes(30));
  }
  return fleet;
}

UpstreamConfig ParseUpstream(const YAML::Node& node) {
  RequireMap(node, "upstream");
  RejectUnknownKeys(node, "upstream",
                    {"url", "ca_file", "timeout", "passcode_header", "max_connections", "max_response_size"});
  UpstreamConfig upstream;
  if (!node["url"]) Fail(node, "upstream.url is required, e.g. https://api.stormondemand.com/v1");
  upstream.url = Scalar(node["url"], "upstream.url");
  if (upstream.url.rfind("https://", 0) != 0 && upstream.url.rfind("http://", 0) != 0) {
    Fail(node["url"], "upstream.url must start with https:// (or http:// for a local test server)");
  }
  if (upstream.url.find_first_of("?#@ ") != std::string::npos) {
    Fail(node["url"], "upstream.url must be a base URL without credentials, query, fragment or spaces");
  }
  if (upstream.url.rfind("http://", 0) == 0 && !IsLoopbackHost(upstream.url)) {
    Fail(node["url"], "upstream.url uses plain http:// to another machine, which would send the password in "
                      "clear text: use https:// (http:// is only for a server on this machine, such as 127.0.0.1)");
  }
  while (upstream.url.back() == '/') upstream.url.pop_back();
  if (node["ca_file"]) {
    upstream.ca_file = Scalar(node["ca_file"], "upstream.ca_file");
    if (access(upstream.ca_file.c_str(), R_OK) != 0) {
      Fail(node["ca_file"], "upstream.ca_file " + upstream.ca_file + " cannot be read");
    }
  }
  if (node["timeout"]) {
    upstream.timeout = Duration(node["timeout"], "upstream.timeout", std::chrono::milliseconds(100),
                                std::chrono::minutes(10));
  }
  if (node["max_connections"]) {
    upstream.max_connections = Count(node["max_connections"], "upstream.max_connections", 1, 1024, "connections");
  }
  if (node["max_response_size"]) {
    upstream.max_response_bytes =
        ByteSize(node["max_response_size"], "upstream.max_response_size", 64 << 10, size_t{1} << 30);
  }
  if (node["passcode_header"]) {
    upstream.passcode_header = Scalar(node["passcode_header"], "upstream.passcode_header");
    const std::string& name = upstream.passcode_header;
    if (!std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; })) {
      Fail(node["passcode_header"], "upstream.passcode_header must be an HTTP header name (letters, digits, '-')");
    }
  }
  return upstream;
}

// The file a secret comes from: `file_key` names it, or `credential_key`
// names a systemd credential (LoadCredential=) in $CREDENTIALS_DIRECTORY.
// Empty when neither is given and the secret is optional.
std::string SecretSource(const YAML::Node& node, const std::string& where, const char* file_key,
                         const char* credential_key, bool required) {
  if (node[file_key] && node[credential_key]) {
    Fail(node[credential_key], where + ": give " + file_key + " or " + credential_key + ", not both");
  }
  if (node[file_key]) return Scalar(node[file_key], where + "." + file_key);
  if (!node[credential_key]) {
    if (required) Fail(node, where + "." + file_key + " (or " + credential_key + ") is required");
    return "";
  }
  std::string name = Scalar(node[credential_key], where + "." + credential_key);
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    Fail(node[credential_key], where + "." + credential_key + " is a credential name, not a path");
  }
  const char* directory = std::getenv("CREDENTIALS_DIRECTORY");
  if (!directory || !*directory) {
    Fail(node[credential_key], where + "." + credential_key +
                                   " needs $CREDENTIALS_DIRECTORY, which systemd sets for LoadCredential= "
                                   "(outside systemd, use " + file_key + ")");
  }
  return std::string(directory) + "/" + name;
}

// In fleet mode an account may leave out its credentials: that machine only
// follows the account, with the token another machine's broker obtains.
AccountConfig ParseAccount(const std::string& name, const YAML::Node& key, const YAML::Node& node, bool fleet) {
  if (!IsValidAccountName(name)) {
    Fail(key, "account name '" + name + "' must be 1-64 letters, digits, '_', '-' or '.'");
  }
  std::string where = "accounts." + name;
  RequireMap(node, where);
  if (node["password"]) {
    Fail(node["password"], "passwords are never written in the config: put it in a file readable "
                           "only by the daemon and name it with " + where + ".password_file");
  }
  RejectUnknownKeys(node, where,
                    {"username", "password_file", "password_credential", "token_timeout", "two_factor",
                     "totp_secret_file", "totp_secret_credential", "max_lifetime", "renew_before",
                     "expire_on_shutdown", "relogin_interval"});
  AccountConfig account;
  account.name = name;
  if (!node["username"]) Fail(node, where + ".username is required");
  account.username = Scalar(node["username"], where + ".username");
  if (account.username.find(':') != std::string::npos) {
    Fail(node["username"], where + ".username must not contain ':' (HTTP Basic authentication)");
  }
  account.password_file = SecretSource(node, where, "password_file", "password_credential", !fleet);
  std::string warning;
  if (!account.password_file.empty()) {
    const YAML::Node password_source = node[node["password_file"] ? "password_file" : "password_credential"];
    auto password = ReadSecretFile(account.password_file, &warning);
    if (!password.ok()) Fail(password_source, password.status().message());
    if (!warning.empty()) Warn(password_source, warning);
    account.password = std::move(password).value();
  }
  if (node["token_timeout"]) {
    account.token_timeout = Duration(node["token_timeout"], where + ".token_timeout",
                                     std::chrono::seconds(1), std::chrono::hours(1));
  }
  if (node["two_factor"]) {
    std::string mode = Scalar(node["two_factor"], where + ".two_factor");
    bool known = false;
    for (TwoFactor each : {TwoFactor::kNone, TwoFactor::kPrompt, TwoFactor::kTotp}) {
      if (mode == TwoFactorName(each)) {
        account.two_factor = each;
        known = true;
      }
    }
    if (!known) Fail(node["two_factor"], where + ".two_factor must be none, prompt or totp");
  }
  std::string totp_file = SecretSource(node, where, "totp_secret_file", "totp_secret_credential",
                                       account.two_factor == TwoFactor::kTotp && !account.password.empty());
  if (account.two_factor == TwoFactor::kTotp && !totp_file.empty()) {
    const YAML::Node source = node[node["totp_secret_file"] ? "totp_secret_file" : "totp_secret_credential"];
    auto secret = ReadSecretFile(totp_file, &warning);
    if (!secret.ok()) Fail(source, secret.status().message());
    if (!warning.empty()) Warn(source, warning);
    auto key = DecodeBase32(secret->Reveal());
    if (!key.ok()) Fail(source, "the TOTP secret " + key.status().message());
    account.totp_key = Secret(std::move(key).value());
  } else if (!totp_file.empty()) {
    Fail(node, where + ": a TOTP secret needs two_factor: totp");
  }
  if (node["max_lifetime"]) {
    account.max_lifetime = Duration(node["max_lifetime"], where + ".max_lifetime", std::chrono::seconds(2),
                                    std::chrono::hours(12));
  }
  if (node["renew_before"]) {
    account.renew_before = Duration(node["renew_before"], where + ".renew_before", std::chrono::seconds(1),
                                    std::chrono::hours(11));
  }
  if (account.renew_before >= account.max_lifetime) {
    Fail(node["renew_before"] ? node["renew_before"] : node,
         where + ".renew_before must be shorter than max_lifetime (" +
             std::to_string(account.max_lifetime.count() / 1000) + "s)");
  }
  if (node["relogin_interval"]) {
    account.relogin_interval = Duration(node["relogin_interval"], where + ".relogin_interval",
                                        std::chrono::seconds(1), std::chrono::hours(1));
  }
  account.expire_on_shutdown = node["expire_on_shutdown"]
                                   ? Boolean(node["expire_on_shutdown"], where + ".expire_on_shutdown")
                                   : account.two_factor == TwoFactor::kNone;
  return account;
}

PolicyRule ParseRule(const YAML::Node& node, const std::set<std::string>& account_names) {
  RequireMap(node, "each policy rule");
  RejectUnknownKeys(node, "policy rule",
                    {"uids", "users", "groups", "accounts", "methods", "admin", "token_export", "metrics"});
  PolicyRule rule;
  rule.line = LineOf(node);
  if (node["uids"]) {
    if (!node["uids"].IsSequence()) Fail(node["uids"], "uids must be a list of numbers, e.g. [0, 1000]");
    for (const auto& item : node["uids"]) {
      std::string text = Scalar(item, "each uid");
      char* end = nullptr;
      unsigned long uid = std::strtoul(text.c_str(), &end, 10);
      if (*end != '\0' || text[0] == '-' || uid > 0xfffffffeUL) Fail(item, "'" + text + "' is not a uid");
      rule.uids.push_back(static_cast<uid_t>(uid));
    }
  }
  if (node["users"]) {
    if (!node["users"].IsSequence()) Fail(node["users"], "users must be a list of names, e.g. [root]");
    for (const auto& item : node["users"]) {
      std::string user = Scalar(item, "each user");
      struct passwd* pw = getpwnam(user.c_str());
      if (!pw) Fail(item, "unknown user '" + user + "': create it, or name it by uid under uids:");
      rule.uids.push_back(pw->pw_uid);
    }
  }
  if (node["groups"]) {
    if (!node["groups"].IsSequence()) Fail(node["groups"], "groups must be a list of names, e.g. [builders]");
    for (const auto& item : node["groups"]) {
      std::string group = Scalar(item, "each group");
      struct group* gr = getgrnam(group.c_str());
      if (!gr) Fail(item, "unknown group '" + group + "': create it, or remove it from the rule");
      rule.gids.push_back(gr->gr_gid);
    }
  }
  if (rule.uids.empty() && rule.gids.empty()) {
    Fail(node, "a policy rule must name who it admits with uids:, users: or groups:");
  }
  rule.metrics = node["metrics"] && Boolean(node["metrics"], "metrics");
  bool grants_accounts = node["methods"] || node["admin"] || node["token_export"];
  if (rule.metrics && !grants_accounts && !node["accounts"]) return rule;  // a scraper's rule
  if (!node["accounts"]) Fail(node, "a policy rule must list accounts: (names, or \"*\" for all)");
  rule.accounts = StringList(node["accounts"], "accounts");
  for (size_t i = 0; i < rule.accounts.size(); ++i) {
    const std::string& name = rule.accounts[i];
    if (name != "*" && !account_names.count(name)) {
      Fail(node["accounts"][i], "policy names account '" + name + "', which is not under accounts:");
    }
  }
  if (!grants_accounts) {
    Fail(node, "a policy rule must list methods: (patterns, or \"*\" for all), or say admin: or token_export: true");
  }
  if (node["methods"]) rule.methods = StringList(node["methods"], "methods");
  rule.admin = node["admin"] && Boolean(node["admin"], "admin");
  rule.token_export = node["token_export"] && Boolean(node["token_export"], "token_export");
  return rule;
}

Config Parse(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) throw ConfigError{0, "the file is empty"};
  RequireMap(root, "the top level");
  RejectUnknownKeys(root, "the top level",
                    {"listen", "upstream", "accounts", "policy", "state_dir", "audit", "shutdown_timeout", "limits",
                     "metrics", "fleet"});
  Config config;
  if (root["state_dir"]) {
    config.state_dir = Scalar(root["state_dir"], "state_dir");
    if (config.state_dir.front() != '/') Fail(root["state_dir"], "state_dir must be an absolute path");
    CheckStateDir(root["state_dir"], config.state_dir);
  }
  for (const char* required : {"listen", "upstream", "accounts", "policy"}) {
    if (!root[required]) Fail(root, std::string("missing section '") + required + "'");
  }
  config.listen = ParseListen(root["listen"]);
  if (root["shutdown_timeout"]) {
    config.shutdown_timeout = Duration(root["shutdown_timeout"], "shutdown_timeout", std::chrono::milliseconds(0),
                                       std::chrono::minutes(5));
  }
  if (root["audit"]) config.audit = ParseAudit(root["audit"]);
  if (root["limits"]) config.limits = ParseLimits(root["limits"]);
  if (root["metrics"]) config.metrics = ParseMetrics(root["metrics"]);
  if (root["fleet"]) config.fleet = ParseFleet(root["fleet"]);
  config.upstream = ParseUpstream(root["upstream"]);
  if (config.fleet.enabled && config.fleet.retire_grace < config.upstream.timeout) {
    Fail(root["fleet"]["retire_grace"] ? root["fleet"]["retire_grace"] : root["fleet"],
         "fleet.retire_grace must be at least upstream.timeout (" +
             std::to_string(config.upstream.timeout.count() / 1000) +
             "s): another machine's call started with a replaced token may run that long");
  }

  RequireMap(root["accounts"], "accounts");
  if (root["accounts"].size() == 0) Fail(root["accounts"], "accounts: must name at least one account");
  std::set<std::string> names;
  for (const auto& entry : root["accounts"]) {
    std::string name = Scalar(entry.first, "account name");
    names.insert(name);
    config.accounts.emplace(name, ParseAccount(name, entry.first, entry.second, config.fleet.enabled));
  }

  if (!root["policy"].IsSequence()) Fail(root["policy"], "policy must be a list of rules");
  for (const auto& rule : root["policy"]) config.policy.push_back(ParseRule(rule, names));
  return config;
}

}  // namespace

bool IsValidAccountName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

AccountConfig AccountConfig::Clone() const {
  AccountConfig copy;
  copy.name = name;
  copy.username = username;
  copy.password_file = password_file;
  copy.password = password.Clone();
  copy.two_factor = two_factor;
  copy.totp_key = totp_key.Clone();
  copy.token_timeout = token_timeout;
  copy.max_lifetime = max_lifetime;
  copy.renew_before = renew_before;
  copy.expire_on_shutdown = expire_on_shutdown;
  copy.relogin_interval = relogin_interval;
  return copy;
}

FleetConfig FleetConfig::Clone() const {
  FleetConfig copy;
  copy.enabled = enabled;
  copy.name = name;
  copy.prefix = prefix;
  copy.endpoints = endpoints;
  copy.insecure = insecure;
  copy.ca_file = ca_file;
  copy.client_cert_file = client_cert_file;
  copy.client_key_file = client_key_file;
  copy.username = username;
  copy.password = password.Clone();
  copy.sealing_key = sealing_key.Clone();
  copy.lease_ttl = lease_ttl;
  copy.retire_grace = retire_grace;
  return copy;
}

const char* TwoFactorName(TwoFactor mode) {
  switch (mode) {
    case TwoFactor::kNone: return "none";
    case TwoFactor::kPrompt: return "prompt";
    case TwoFactor::kTotp: return "totp";
  }
  return "none";
}

Result<Config> LoadConfig(const std::string& path) {
  std::vector<Warning> found;
  warnings = &found;
  struct Done {
    ~Done() { warnings = nullptr; }
  } done;
  try {
    YAML::Node root = YAML::LoadFile(path);
    Config config = Parse(root);
    config.path = path;
    for (const Warning& w : found) config.warnings.push_back(path + ":" + std::to_string(w.line) + ": " + w.message);
    return config;
  } catch (const ConfigError& e) {
    return InvalidArgument(path + ":" + std::to_string(e.line) + ": " + e.message);
  } catch (const YAML::BadFile&) {
    return InvalidArgument(path + ": cannot open the config file");
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace stormbroker
