// The upstream, limits and audit sections: the API, and the bounds on what
// callers can make the broker hold.
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "config/address.h"
#include "config/sections.h"

namespace stormbroker::config {

namespace {

const Keys<UpstreamConfig>& KeepWarmKeys() {
  using std::chrono::milliseconds;
  static const Keys<UpstreamConfig> keys = {
      Field("connections", &UpstreamConfig::keep_warm_connections, Counted(0, 64, "connections"), "2"),
      Field("warm_for", &UpstreamConfig::keep_warm_for, Lasting(std::chrono::seconds(1), std::chrono::hours(24)),
            "30m"),
      Field("interval", &UpstreamConfig::keep_warm_interval, Lasting(milliseconds(500), std::chrono::hours(1)),
            "50s"),
  };
  return keys;
}

}  // namespace

const Keys<UpstreamConfig>& UpstreamKeys() {
  using std::chrono::milliseconds;
  static const Keys<UpstreamConfig> keys = {
      Field("url", &UpstreamConfig::url,
            [](const YAML::Node& node, const std::string& path) {
              std::string url = Scalar(node, path);
              if (url.rfind("https://", 0) != 0 && url.rfind("http://", 0) != 0) {
                Fail(node, path + " must start with https:// (or http:// for a local test server)");
              }
              if (url.find_first_of("?#@ ") != std::string::npos) {
                Fail(node, path + " must be a base URL without credentials, query, fragment or spaces");
              }
              if (url.rfind("http://", 0) == 0 && !IsLoopbackUrl(url)) {
                Fail(node, path + " uses plain http:// to another machine, which would send the password in "
                                  "clear text: use https:// (http:// is only for a server on this machine, such "
                                  "as 127.0.0.1)");
              }
              while (url.back() == '/') url.pop_back();
              return url;
            },
            "https://api.example.com/v1"),
      Field("ca_file", &UpstreamConfig::ca_file,
            [](const YAML::Node& node, const std::string& path) {
              std::string file = Scalar(node, path);
              if (access(file.c_str(), R_OK) != 0) Fail(node, path + " " + file + " cannot be read");
              return file;
            },
            "/etc/ssl/certs/ca-certificates.crt"),
      Field("timeout", &UpstreamConfig::timeout, Lasting(milliseconds(100), std::chrono::minutes(10)), "5s"),
      Field("max_connections", &UpstreamConfig::max_connections, Counted(1, 1024, "connections"), "8"),
      Field("max_response_size", &UpstreamConfig::max_response_bytes, Sized(64 << 10, size_t{1} << 30), "1MiB"),
      Field("passcode_header", &UpstreamConfig::passcode_header,
            [](const YAML::Node& node, const std::string& path) {
              std::string name = Scalar(node, path);
              if (!std::all_of(name.begin(), name.end(),
                               [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; })) {
                Fail(node, path + " must be an HTTP header name (letters, digits, '-')");
              }
              return name;
            },
            "X-Passcode"),
      Nested("keep_warm", KeepWarmKeys()),
  };
  return keys;
}

UpstreamConfig ParseUpstream(const YAML::Node& node, const std::string& path) {
  UpstreamConfig upstream;
  ReadSection(node, path, UpstreamKeys(), upstream);
  if (!node["url"]) Fail(node, path + ".url is required, e.g. https://api.stormondemand.com/v1");
  if (upstream.keep_warm_connections > upstream.max_connections) {
    Fail(node["keep_warm"]["connections"], path + ".keep_warm.connections must be at most " + path +
                                               ".max_connections (" + std::to_string(upstream.max_connections) + ")");
  }
  return upstream;
}

const Keys<LimitsConfig>& LimitsKeys() {
  using std::chrono::milliseconds;
  static const Keys<LimitsConfig> keys = {
      Field("max_request_size", &LimitsConfig::max_request_bytes, Sized(4 << 10, 64 << 20), "64KiB"),
      Field("max_params_size", &LimitsConfig::max_params_bytes, Sized(1 << 10, 64 << 20), "32KiB"),
      Field("body_bytes_per_uid", &LimitsConfig::body_bytes_per_uid, Sized(64 << 10, 1 << 30), "1MiB"),
      Field("connections", &LimitsConfig::connections, Counted(1, 1'000'000, "connections"), "5000"),
      Field("connections_per_uid", &LimitsConfig::connections_per_uid, Counted(1, 1'000'000, "connections"), "10"),
      Field("calls_per_connection", &LimitsConfig::calls_per_connection, Counted(1, 100'000, "calls"), "10"),
      Field("calls_per_uid", &LimitsConfig::calls_per_uid, Counted(1, 1'000'000, "calls"), "10"),
      Field("idle_timeout", &LimitsConfig::idle_timeout, Lasting(std::chrono::seconds(1), std::chrono::hours(24)),
            "1m"),
      Field("first_request_timeout", &LimitsConfig::first_request_timeout,
            Lasting(milliseconds(100), std::chrono::minutes(10)), "2s"),
      Field("reserved_descriptors", &LimitsConfig::reserved_descriptors, Counted(1, 100'000, "descriptors"), "64"),
  };
  return keys;
}

LimitsConfig ParseLimits(const YAML::Node& node, const std::string& path) {
  LimitsConfig limits;
  ReadSection(node, path, LimitsKeys(), limits);
  if (limits.connections_per_uid > limits.connections) {
    Fail(node["connections_per_uid"] ? node["connections_per_uid"] : node["connections"],
         path + ".connections_per_uid must not exceed " + path + ".connections (" +
                                          std::to_string(limits.connections) + ")");
  }
  return limits;
}

const Keys<AuditConfig>& AuditKeys() {
  static const Keys<AuditConfig> keys = {
      Field("file", &AuditConfig::file, AbsolutePath, "/var/log/stormbroker/audit.jsonl"),
      Field("queue", &AuditConfig::queue, Counted(1, 1'000'000, "records"), "100"),
      Field("queue_bytes", &AuditConfig::queue_bytes, Sized(64 << 10, 1 << 30), "1MiB"),
      Field("refusal_rate", &AuditConfig::refusal_rate,
            [](const YAML::Node& node, const std::string& path) {
              return static_cast<double>(Count(node, path, 1, 100'000, "records a second"));
            },
            "3"),
      Field("refusal_burst", &AuditConfig::refusal_burst, Counted(1, 1'000'000, "records"), "5"),
  };
  return keys;
}

AuditConfig ParseAudit(const YAML::Node& node, const std::string& path) {
  AuditConfig audit;
  ReadSection(node, path, AuditKeys(), audit);
  return audit;
}

}  // namespace stormbroker::config
