// The daemon's configuration: one YAML file turned into typed, validated values.
//
// LoadConfig either returns a complete Config whose every value has been checked
// (durations in range, secret files readable, users and groups known) or an
// error of the form "FILE:LINE: what is wrong and what to do".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

struct ListenConfig {
  std::string socket_path;
  mode_t mode = 0660;  // permission bits of the socket file
  std::optional<gid_t> group;  // the socket file's group; default: the daemon's
};

struct AuditConfig {
  std::string file;      // empty: standard error (the journal under systemd)
  size_t queue = 10000;  // records waiting for the writer before new ones are dropped
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
};

enum class TwoFactor {
  kNone,    // the password alone logs in
  kPrompt,  // an operator types a passcode (stormctl login) for every new token
  kTotp,    // the daemon computes passcodes from a secret it holds
};

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

  AccountConfig Clone() const;
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
  std::map<std::string, AccountConfig> accounts;
  std::vector<PolicyRule> policy;
};

Result<Config> LoadConfig(const std::string& path);

// 1 to 64 letters, digits, '_', '-' or '.'.
bool IsValidAccountName(std::string_view name);

}  // namespace stormbroker
