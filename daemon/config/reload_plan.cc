#include "config/reload_plan.h"

namespace stormbroker {
namespace {

class Differences {
 public:
  explicit Differences(std::vector<std::string>& keys) : keys_(keys) {}

  template <typename T>
  Differences& Key(const std::string& key, const T& running, const T& fresh) {
    if (!(running == fresh)) keys_.push_back(key);
    return *this;
  }

 private:
  std::vector<std::string>& keys_;
};

void CompareAccount(const std::string& prefix, const AccountConfig& a, const AccountConfig& b, Differences& restart) {
  restart.Key(prefix + "username", a.username, b.username)
      .Key(prefix + "password_file", a.password_file, b.password_file)
      .Key(prefix + "password", a.password, b.password)  // the file's content
      .Key(prefix + "two_factor", a.two_factor, b.two_factor)
      .Key(prefix + "totp_secret_file", a.totp_key, b.totp_key)
      .Key(prefix + "token_timeout", a.token_timeout, b.token_timeout)
      .Key(prefix + "max_lifetime", a.max_lifetime, b.max_lifetime)
      .Key(prefix + "renew_before", a.renew_before, b.renew_before)
      .Key(prefix + "expire_on_shutdown", a.expire_on_shutdown, b.expire_on_shutdown)
      .Key(prefix + "relogin_interval", a.relogin_interval, b.relogin_interval);
}

}  // namespace

ReloadPlan PlanReload(const Config& a, const Config& b) {
  ReloadPlan plan;
  Differences now(plan.applied), restart(plan.needs_restart);
  now.Key("policy", a.policy, b.policy).Key("shutdown_timeout", a.shutdown_timeout, b.shutdown_timeout);
  restart.Key("state_dir", a.state_dir, b.state_dir)
      .Key("listen.socket", a.listen.socket_path, b.listen.socket_path)
      .Key("listen.mode", a.listen.mode, b.listen.mode)
      .Key("listen.group", a.listen.group, b.listen.group)
      .Key("listen.http_socket", a.listen.http_socket, b.listen.http_socket)
      .Key("listen.http", a.listen.http, b.listen.http)
      .Key("listen.http_tls.cert_file", a.listen.http_tls_cert_file, b.listen.http_tls_cert_file)
      .Key("listen.http_tls.key_file", a.listen.http_tls_key_file, b.listen.http_tls_key_file)
      .Key("upstream.url", a.upstream.url, b.upstream.url)
      .Key("upstream.ca_file", a.upstream.ca_file, b.upstream.ca_file)
      .Key("upstream.timeout", a.upstream.timeout, b.upstream.timeout)
      .Key("upstream.max_connections", a.upstream.max_connections, b.upstream.max_connections)
      .Key("upstream.passcode_header", a.upstream.passcode_header, b.upstream.passcode_header)
      .Key("upstream.max_response_size", a.upstream.max_response_bytes, b.upstream.max_response_bytes)
      .Key("metrics.listen", a.metrics.listen, b.metrics.listen)
      .Key("metrics.textfile", a.metrics.textfile, b.metrics.textfile)
      .Key("metrics.interval", a.metrics.interval, b.metrics.interval)
      .Key("audit.file", a.audit.file, b.audit.file)
      .Key("audit.queue", a.audit.queue, b.audit.queue)
      .Key("audit.queue_bytes", a.audit.queue_bytes, b.audit.queue_bytes)
      .Key("audit.refusal_rate", a.audit.refusal_rate, b.audit.refusal_rate)
      .Key("audit.refusal_burst", a.audit.refusal_burst, b.audit.refusal_burst)
      .Key("limits.max_request_size", a.limits.max_request_bytes, b.limits.max_request_bytes)
      .Key("limits.max_params_size", a.limits.max_params_bytes, b.limits.max_params_bytes)
      .Key("limits.body_bytes_per_uid", a.limits.body_bytes_per_uid, b.limits.body_bytes_per_uid)
      .Key("limits.connections", a.limits.connections, b.limits.connections)
      .Key("limits.connections_per_uid", a.limits.connections_per_uid, b.limits.connections_per_uid)
      .Key("limits.calls_per_connection", a.limits.calls_per_connection, b.limits.calls_per_connection)
      .Key("limits.calls_per_uid", a.limits.calls_per_uid, b.limits.calls_per_uid)
      .Key("limits.idle_timeout", a.limits.idle_timeout, b.limits.idle_timeout)
      .Key("limits.first_request_timeout", a.limits.first_request_timeout, b.limits.first_request_timeout)
      .Key("limits.reserved_descriptors", a.limits.reserved_descriptors, b.limits.reserved_descriptors)
      .Key("fleet", a.fleet.enabled, b.fleet.enabled)
      .Key("fleet.name", a.fleet.name, b.fleet.name)
      .Key("fleet.prefix", a.fleet.prefix, b.fleet.prefix)
      .Key("fleet.etcd.endpoints", a.fleet.endpoints, b.fleet.endpoints)
      .Key("fleet.etcd.ca_file", a.fleet.ca_file, b.fleet.ca_file)
      .Key("fleet.etcd.insecure", a.fleet.insecure, b.fleet.insecure)
      .Key("fleet.etcd.cert_file", a.fleet.client_cert_file, b.fleet.client_cert_file)
      .Key("fleet.etcd.key_file", a.fleet.client_key_file, b.fleet.client_key_file)
      .Key("fleet.etcd.username", a.fleet.username, b.fleet.username)
      .Key("fleet.etcd.password_file", a.fleet.password, b.fleet.password)
      .Key("fleet.key_file", a.fleet.sealing_key, b.fleet.sealing_key)  // the key itself
      .Key("fleet.lease_ttl", a.fleet.lease_ttl, b.fleet.lease_ttl)
      .Key("fleet.retire_grace", a.fleet.retire_grace, b.fleet.retire_grace);
  for (const auto& [name, account] : a.accounts) {
    auto fresh = b.accounts.find(name);
    if (fresh == b.accounts.end()) plan.needs_restart.push_back("accounts." + name + " (removed)");
    else CompareAccount("accounts." + name + ".", account, fresh->second, restart);
  }
  for (const auto& [name, account] : b.accounts) {
    if (!a.accounts.count(name)) plan.needs_restart.push_back("accounts." + name + " (added)");
  }
  return plan;
}

Config ApplyReload(const Config& running, const Config& fresh) {
  Config applied;
  applied.path = running.path;
  applied.state_dir = running.state_dir;
  applied.listen = running.listen;
  applied.upstream = running.upstream;
  applied.audit = running.audit;
  applied.limits = running.limits;
  applied.metrics = running.metrics;
  applied.fleet = running.fleet.Clone();
  for (const auto& [name, account] : running.accounts) applied.accounts.emplace(name, account.Clone());
  applied.policy = fresh.policy;
  applied.shutdown_timeout = fresh.shutdown_timeout;
  applied.warnings = fresh.warnings;
  return applied;
}

}  // namespace stormbroker
