// The config file's sections: each one's table of keys (config_keys.h) and
// its parser, which reads the keys by the table and then checks what
// involves more than one key. Internal to config/.
#pragma once

#include <set>
#include <string>

#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "config/yaml_reader.h"

namespace stormbroker::config {

// Readers of a key's value within fixed bounds, for the tables.
inline auto Counted(unsigned long low, unsigned long high, const char* unit) {
  return [=](const YAML::Node& node, const std::string& path) -> size_t { return Count(node, path, low, high, unit); };
}
inline auto Sized(size_t low, size_t high) {
  return [=](const YAML::Node& node, const std::string& path) { return ByteSize(node, path, low, high); };
}
inline auto Lasting(std::chrono::milliseconds low, std::chrono::milliseconds high) {
  return [=](const YAML::Node& node, const std::string& path) { return Duration(node, path, low, high); };
}

// One `cache:` rule; warns when a pattern covers a method that may write.
CacheRule ParseCacheRule(const YAML::Node& node, const std::set<std::string>& account_names);

// The top level: every section, and state_dir, shutdown_timeout, policy.
const Keys<Config>& TopLevelKeys();
// Every key of the file, sections' keys by their full path.
std::vector<KeyInfo> AllKeys();

const Keys<ListenConfig>& ListenKeys();
ListenConfig ParseListen(const YAML::Node& node, const std::string& path);
const Keys<MetricsConfig>& MetricsKeys();
MetricsConfig ParseMetrics(const YAML::Node& node, const std::string& path);

const Keys<UpstreamConfig>& UpstreamKeys();
UpstreamConfig ParseUpstream(const YAML::Node& node, const std::string& path);
const Keys<LimitsConfig>& LimitsKeys();
LimitsConfig ParseLimits(const YAML::Node& node, const std::string& path);
const Keys<AuditConfig>& AuditKeys();
AuditConfig ParseAudit(const YAML::Node& node, const std::string& path);

// One account; `fleet`: the broker is in a fleet, where an account may
// leave out its credentials (the machine only follows it).
const Keys<AccountConfig>& AccountKeys();
AccountConfig ParseAccount(const std::string& name, const YAML::Node& key, const YAML::Node& node, bool fleet);
PolicyRule ParseRule(const YAML::Node& node, const std::set<std::string>& account_names);

const Keys<FleetConfig>& FleetKeys();
FleetConfig ParseFleet(const YAML::Node& node, const std::string& path);

}  // namespace stormbroker::config
