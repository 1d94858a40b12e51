#include "config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <yaml-cpp/yaml.h>

#include "config/sections.h"

namespace stormbroker {
namespace config {
namespace {

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

// A top-level list of rules (policy, cache), each parsed by `parse`
// knowing the accounts (declared above the list).
template <typename Rule>
Key<Config> RuleList(const char* name, std::vector<Rule> Config::*member,
                     Rule (*parse)(const YAML::Node&, const std::set<std::string>&), OnReload reload) {
  return Field<Config>(
      name,
      [member, parse](const YAML::Node& node, const std::string& path, Config& into) {
        if (!node.IsSequence()) Fail(node, path + " must be a list of rules");
        std::set<std::string> names;
        for (const auto& entry : into.accounts) names.insert(entry.first);
        for (const auto& rule : node) (into.*member).push_back(parse(rule, names));
      },
      "", reload, member);
}

}  // namespace

const Keys<Config>& TopLevelKeys() {
  static const Keys<Config> keys = [] {
    Keys<Config> top = {
        Field("state_dir", &Config::state_dir,
              [](const YAML::Node& node, const std::string& path) {
                std::string dir = AbsolutePath(node, path);
                CheckStateDir(node, dir);
                return dir;
              },
              "/var/lib/other"),
        Field("shutdown_timeout", &Config::shutdown_timeout,
              [](const YAML::Node& node, const std::string& path) {
                return Duration(node, path, std::chrono::milliseconds(0), std::chrono::minutes(5));
              },
              "3s", OnReload::kApplied),
        SectionKey("listen", &Config::listen, ListenKeys(), ParseListen),
        SectionKey("upstream", &Config::upstream, UpstreamKeys(), ParseUpstream),
        SectionKey("audit", &Config::audit, AuditKeys(), ParseAudit),
        SectionKey("limits", &Config::limits, LimitsKeys(), ParseLimits),
        SectionKey("metrics", &Config::metrics, MetricsKeys(), ParseMetrics),
        SectionKey("fleet", &Config::fleet, FleetKeys(), ParseFleet),
    };
    // After fleet (an account may follow only in a fleet).
    Key<Config> accounts;
    accounts.name = "accounts";
    accounts.read = [](const YAML::Node& node, const std::string& path, Config& into) {
      RequireMap(node, path);
      if (node.size() == 0) Fail(node, path + ": must name at least one account");
      for (const auto& entry : node) {
        std::string name = Scalar(entry.first, "account name");
        into.accounts.emplace(name, ParseAccount(name, entry.first, entry.second, into.fleet.enabled));
      }
    };
    accounts.compare = [](const Config& a, const Config& b, const std::string& path, ReloadPlan& plan) {
      for (const auto& [name, account] : a.accounts) {
        auto fresh = b.accounts.find(name);
        if (fresh == b.accounts.end()) plan.needs_restart.push_back(path + "." + name + " (removed)");
        else CompareSection(AccountKeys(), account, fresh->second, path + "." + name + ".", plan);
      }
      for (const auto& [name, account] : b.accounts) {
        if (!a.accounts.count(name)) plan.needs_restart.push_back(path + "." + name + " (added)");
      }
    };
    accounts.copy = [](const Config& from, Config& to, bool applied_only) {
      if (applied_only) return;  // an account is read at start only
      to.accounts.clear();
      for (const auto& [name, account] : from.accounts) to.accounts.emplace(name, account.Clone());
    };
    accounts.describe = [](const std::string& prefix, std::vector<KeyInfo>& out) {
      DescribeSection(AccountKeys(), prefix + "accounts.*.", out);
    };
    top.push_back(std::move(accounts));
    // After accounts (a rule names them).
    top.push_back(RuleList("policy", &Config::policy, ParseRule, OnReload::kApplied));
    top.push_back(RuleList("cache", &Config::cache, ParseCacheRule, OnReload::kRestart));
    top.push_back(Field("cache_max_bytes", &Config::cache_max_bytes, Sized(0, size_t{4} << 30), "32MiB"));
    return top;
  }();
  return keys;
}

namespace {

Config Parse(const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) throw ConfigError{0, "the file is empty"};
  Config config;
  ReadSection(root, "", TopLevelKeys(), config);
  for (const char* required : {"listen", "upstream", "accounts", "policy"}) {
    if (!root[required]) Fail(root, std::string("missing section '") + required + "'");
  }
  if (config.fleet.enabled && config.fleet.retire_grace < config.upstream.timeout) {
    Fail(root["fleet"]["retire_grace"] ? root["fleet"]["retire_grace"] : root["fleet"],
         "fleet.retire_grace must be at least upstream.timeout (" +
             std::to_string(config.upstream.timeout.count() / 1000) +
             "s): another machine's call started with a replaced token may run that long");
  }
  return config;
}

}  // namespace
std::vector<KeyInfo> AllKeys() {
  std::vector<KeyInfo> keys;
  DescribeSection(TopLevelKeys(), "", keys);
  return keys;
}

}  // namespace config

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
  config::CopySection(config::AccountKeys(), *this, copy, /*applied_only=*/false);
  return copy;
}

FleetConfig FleetConfig::Clone() const {
  FleetConfig copy;
  copy.enabled = enabled;
  config::CopySection(config::FleetKeys(), *this, copy, /*applied_only=*/false);
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
  using config::ConfigError;
  std::vector<config::Warning> found;
  config::WarningScope scope(&found);
  try {
    YAML::Node root = YAML::LoadFile(path);
    Config config = config::Parse(root);
    config.path = path;
    for (const config::Warning& w : found) config.warnings.push_back(path + ":" + std::to_string(w.line) + ": " + w.message);
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
