// The daemon's configuration: one YAML file turned into typed, validated values.
//
// LoadConfig either returns a complete Config whose every value has been checked
// (durations in range, secret files readable, users and groups known) or an
// error of the form "FILE:LINE: what is wrong and what to do".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/tcp_address.h"
#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

struct ListenConfig {
  std::string socket_path;
  mode_t mode = 0660;  // permission bits of the socket files (gRPC and HTTP)
  std::optional<gid_t> group;  // the socket files' group; default: the daemon's
  // The HTTP door (the Storm API's own paths), on a Unix socket and on
  // loopback TCP; each optional.
  std::string http_socket;
  std::optional<TcpAddress> http;
  // HTTPS on listen.http instead of HTTP, for clients that insist on
  // https:// (empty: plain HTTP). The key file is read as a secret.
  std::string http_tls_cert_file;
  std::string http_tls_key_file;
  // The HTTPS proxy door (listen.https_proxy.address, loopback TCP): CONNECT
  // to `https_proxy_hosts` on port 443 only, TLS terminated with a leaf from
  // the local CA in the two files (made at start when both are missing).
  std::optional<TcpAddress> https_proxy;
  std::vector<std::string> https_proxy_hosts = {"api.stormondemand.com", "api.liquidweb.com"};
  std::string proxy_ca_cert_file = "/var/lib/stormbroker/proxy-ca.pem";
  std::string proxy_ca_key_file = "/var/lib/stormbroker/proxy-ca.key";
};

struct AuditConfig {
  std::string file;      // empty: standard error (the journal under systemd)
  size_t queue = 10000;  // records waiting for the writer before new ones are dropped
  size_t queue_bytes = 16 << 20;  // and the bytes they may hold
  // Refusals (denied, invalid, over a limit) written per uid: `refusal_rate`
  // a second on average, bursts of `refusal_burst`; the rest are counted.
  double refusal_rate = 10;
  size_t refusal_burst = 50;
};

// What one local caller can make the daemon hold. Callers are untrusted: each
// bound keeps one uid from starving the others or the token's keep-alive.
struct LimitsConfig {
  size_t max_request_bytes = 1 << 20;  // one request as read: a gRPC message, an HTTP body
  // An API call's params as they go upstream (compact JSON), on every door.
  size_t max_params_bytes = 256 << 10;
  // HTTP bodies a uid's requests hold in the broker at once, all doors together.
  size_t body_bytes_per_uid = 8 << 20;
  size_t connections = 4096;           // open at once, all callers together
  size_t connections_per_uid = 1024;
  // Calls in flight at once on one connection: HTTP/2's MAX_CONCURRENT_STREAMS,
  // so a client queues its calls beyond it (or they are refused and it
  // retries them, unsent), and on all of a uid's connections together, a
  // hard bound: beyond it RESOURCE_EXHAUSTED. Watch streams count too.
  size_t calls_per_connection = 128;
  size_t calls_per_uid = 1024;
  // A connection with no call in flight for this long is closed.
  std::chrono::milliseconds idle_timeout{5 * 60'000};
  // A connection that has not completed a request this long after it was
  // accepted is closed (a half-sent message holds memory).
  std::chrono::milliseconds first_request_timeout{10'000};
  // Descriptors never given to callers' connections, so that upstream
  // connections, the state directory and the audit file always have some.
  size_t reserved_descriptors = 256;
};

struct UpstreamConfig {
  std::string url;      // base URL without trailing slash, e.g. https://host/v1
  std::string ca_file;  // empty: the system's CAs
  std::chrono::milliseconds timeout{30'000};  // one HTTP exchange, connect included
  // Calls running upstream at once, one connection each (HTTP/1.1); more
  // wait in line. Enough for the API's latency times the call rate.
  size_t max_connections = 64;
  // The HTTP header that carries a two-factor passcode (the public API
  // documentation does not name one; this is the project's choice).
  std::string passcode_header = "X-Two-Factor-Passcode";
  // The largest answer body read from the API; a bigger one fails the call.
  size_t max_response_bytes = 32 << 20;
  // upstream.keep_warm (upstream/warm_keeper.h): connections kept open for
  // `warm_for` after the last call, by a ping each just before the API
  // would close them; 0 connections: off (the default: each ping is a call
  // the account's API quota sees).
  size_t keep_warm_connections = 0;
  std::chrono::milliseconds keep_warm_for{600'000};
  // How often to ping when the API does not say its keep-alive timeout
  // (Keep-Alive: timeout=N); 4 s keeps Apache's default (5 s) open.
  std::chrono::milliseconds keep_warm_interval{4'000};
};

enum class TwoFactor {
  kNone,    // the password alone logs in
  kPrompt,  // an operator types a passcode (stormctl login) for every new token
  kTotp,    // the daemon computes passcodes from a secret it holds
};
// "none", "prompt", "totp": the words of the config file and of the API.
const char* TwoFactorName(TwoFactor mode);

struct AccountConfig {
  std::string name;
  std::string username;
  std::string password_file;  // from password_file, or the credential's path
  Secret password;
  TwoFactor two_factor = TwoFactor::kNone;
  Secret totp_key;  // kTotp: the raw secret, decoded from the base32 file
  // Inactivity timeout asked of Account/Auth/token (the API allows up to 1 h).
  std::chrono::milliseconds token_timeout{3'600'000};
  // A token's life from creation (the API's hard limit), and how long before
  // it a replacement is obtained (none, totp) or warnings start (prompt).
  std::chrono::milliseconds max_lifetime{12 * 3'600'000};
  std::chrono::milliseconds renew_before{30 * 60'000};
  // Expire the token upstream when the daemon stops. Default: yes without
  // two-factor; no with it, so a restart does not cost a passcode.
  bool expire_on_shutdown = true;
  // After the API rejected the token, a new password login happens at once,
  // but at most once per this interval (a flapping upstream or a forged
  // answer must not cause login storms or lock the account).
  std::chrono::milliseconds relogin_interval{60'000};
  // At most this many of the account's requests at the API at once (0: as
  // many as upstream.max_connections allows), so accounts cannot starve
  // each other.
  size_t max_connections = 0;

  AccountConfig Clone() const;
  // Holds what a login takes (fleet mode lets a machine leave it out and
  // only follow the account).
  bool HoldsCredentials() const {
    return !password.empty() && (two_factor != TwoFactor::kTotp || !totp_key.empty());
  }
};

// One `policy:` entry. A caller matches the principal part when its uid is in
// `uids`, or its primary or supplementary group is in `gids`. Names in the
// file (users:, groups:) are resolved to numbers when the config is loaded.
struct PolicyRule {
  int line = 0;  // where the rule stands in the file, for messages and audit
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
  std::vector<std::string> accounts;  // names, or "*"
  std::vector<std::string> methods;   // method path patterns; '*' matches any run
  bool admin = false;                 // may Login and Logout the rule's accounts
  bool token_export = false;          // may read the token itself (GetToken)
  bool metrics = false;               // may read the metrics endpoint (metrics.listen)
  uint32_t share = 1;                 // the caller's weight in the line for the API (the largest of its rules')

  bool operator==(const PolicyRule&) const = default;
};

// One `cache:` rule: identical calls of `methods` (patterns as in policy)
// on `accounts` (empty: all) share one answer while in flight, and reuse it
// for `ttl` after (0: in flight only). See broker/answer_cache.h.
struct CacheRule {
  int line = 0;
  std::vector<std::string> methods;
  std::vector<std::string> accounts;
  std::chrono::milliseconds ttl{0};

  bool operator==(const CacheRule&) const = default;
};

// Prometheus metrics: served at GET /metrics on `listen`, and written to
// `textfile` (for the node exporter's textfile collector) every `interval`.
// Either may be left out; with neither there are no metrics outside stormctl.
struct MetricsConfig {
  std::optional<TcpAddress> listen;
  std::string textfile;
  std::chrono::milliseconds interval{15'000};
};

// One member of the etcd cluster a fleet coordinates through.
struct EtcdEndpoint {
  bool tls = true;  // https://; http:// is allowed to loopback only
  std::string host;
  uint16_t port = 0;

  bool operator==(const EtcdEndpoint&) const = default;
};

// Fleet mode: the brokers of a build farm share one token per account
// through etcd (fleet/fleet.h). Off unless `fleet:` is in the file.
struct FleetConfig {
  bool enabled = false;
  std::string name;                      // this machine in the fleet; default: the host name
  std::string prefix = "/stormbroker";   // every key the fleet writes starts with it
  // fleet.etcd: the cluster, and how this machine proves itself to it.
  std::vector<EtcdEndpoint> endpoints;
  bool insecure = false;                 // insecure: true, the only way to allow http:// endpoints
  std::string ca_file;                   // etcd's CA (https); empty: the system's
  std::string client_cert_file;          // cert_file: this machine's client certificate (https)
  std::string client_key_file;           // key_file: its private key, read as a secret
  std::string username;                  // etcd's own authentication (with password_file)
  Secret password;
  // fleet.key_file: the key the fleet's machines share, which seals what goes to etcd.
  Secret sealing_key;
  // The lease that holds this machine's candidacies: a leader that stops
  // answering is replaced this long after its last keep-alive.
  std::chrono::milliseconds lease_ttl{5'000};
  // How long the leader keeps a replaced token alive for calls other
  // machines may still start with it.
  std::chrono::milliseconds retire_grace{60'000};

  FleetConfig Clone() const;
};

struct Config {
  std::string path;
  std::string state_dir;  // empty: tokens are not kept across restarts
  // On SIGTERM, how long calls in flight may take to finish before they are
  // answered UNAVAILABLE.
  std::chrono::milliseconds shutdown_timeout{10'000};
  ListenConfig listen;
  UpstreamConfig upstream;
  AuditConfig audit;
  LimitsConfig limits;
  MetricsConfig metrics;
  FleetConfig fleet;
  std::map<std::string, AccountConfig> accounts;
  std::vector<PolicyRule> policy;
  std::vector<CacheRule> cache;  // none: every call goes upstream
  size_t cache_max_bytes = 64 << 20;  // answers held, least recently used dropped first
  // Things that work but deserve a look ("FILE:LINE: ..."), for the log and
  // --check-config.
  std::vector<std::string> warnings;
};

Result<Config> LoadConfig(const std::string& path);

// 1 to 64 letters, digits, '_', '-' or '.'.
bool IsValidAccountName(std::string_view name);

}  // namespace stormbroker
