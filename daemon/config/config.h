// The daemon's configuration: one YAML file turned into typed, validated values.
//
// LoadConfig either returns a complete Config whose every value has been checked
// (durations in range, secret files readable, users and groups known) or an
// error of the form "FILE:LINE: what is wrong and what to do".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

struct ListenConfig {
  std::string socket_path;
  mode_t mode = 0660;  // permission bits of the socket file
};

struct UpstreamConfig {
  std::string url;      // base URL without trailing slash, e.g. https://host/v1
  std::string ca_file;  // empty: the system's CAs
  std::chrono::milliseconds timeout{30'000};  // one HTTP exchange, connect included
};

struct AccountConfig {
  std::string name;
  std::string username;
  std::string password_file;
  Secret password;
  // Inactivity timeout asked of Account/Auth/token (the API allows up to 1 h).
  std::chrono::milliseconds token_timeout{3'600'000};
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
};

struct Config {
  std::string path;
  ListenConfig listen;
  UpstreamConfig upstream;
  std::map<std::string, AccountConfig> accounts;
  std::vector<PolicyRule> policy;
};

Result<Config> LoadConfig(const std::string& path);

}  // namespace stormbroker
