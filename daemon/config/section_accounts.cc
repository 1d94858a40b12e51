// The accounts and policy sections: whose credentials the broker holds, and
// who may use them.
#include <grp.h>
#include <pwd.h>

#include <cstdlib>

#include "config/sections.h"
#include "secret/base32.h"

namespace stormbroker::config {
namespace {

// A secret read from the file `file`, checked as secret files are; a
// warning (group-readable, say) goes to the log and --check-config.
Secret ReadSecret(const YAML::Node& node, const std::string& file) {
  std::string warning;
  auto secret = ReadSecretFile(file, &warning);
  if (!secret.ok()) Fail(node, secret.status().message());
  if (!warning.empty()) Warn(node, warning);
  return std::move(secret).value();
}

// The file behind a systemd credential (LoadCredential=), in $CREDENTIALS_DIRECTORY.
std::string CredentialFile(const YAML::Node& node, const std::string& path, const char* instead) {
  std::string name = Scalar(node, path);
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    Fail(node, path + " is a credential name, not a path");
  }
  const char* directory = std::getenv("CREDENTIALS_DIRECTORY");
  if (!directory || !*directory) {
    Fail(node, path + " needs $CREDENTIALS_DIRECTORY, which systemd sets for LoadCredential= (outside systemd, use " +
                   instead + ")");
  }
  return std::string(directory) + "/" + name;
}

void ReadPassword(const YAML::Node& node, const std::string& file, AccountConfig& into) {
  into.password_file = file;
  into.password = ReadSecret(node, file);
}

void ReadTotpKey(const YAML::Node& node, const std::string& file, AccountConfig& into) {
  if (into.two_factor != TwoFactor::kTotp) Fail(node, "a TOTP secret needs two_factor: totp");
  auto key = DecodeBase32(ReadSecret(node, file).Reveal());
  if (!key.ok()) Fail(node, "the TOTP secret " + key.status().message());
  into.totp_key = Secret(std::move(key).value());
}

}  // namespace

const Keys<AccountConfig>& AccountKeys() {
  using std::chrono::hours;
  using std::chrono::seconds;
  static const Keys<AccountConfig> keys = {
      Field("username", &AccountConfig::username,
            [](const YAML::Node& node, const std::string& path) {
              std::string username = Scalar(node, path);
              if (username.find(':') != std::string::npos) {
                Fail(node, path + " must not contain ':' (HTTP Basic authentication)");
              }
              return username;
            },
            "other-bot"),
      Field<AccountConfig>(
          "password_file",
          [](const YAML::Node& node, const std::string& path, AccountConfig& into) {
            ReadPassword(node, Scalar(node, path), into);
          },
          "", OnReload::kRestart, &AccountConfig::password_file, &AccountConfig::password),
      Alias(Field<AccountConfig>(
          "password_credential",
          [](const YAML::Node& node, const std::string& path, AccountConfig& into) {
            ReadPassword(node, CredentialFile(node, path, "password_file"), into);
          },
          "", OnReload::kRestart, &AccountConfig::password_file, &AccountConfig::password)),
      Field("token_timeout", &AccountConfig::token_timeout, Lasting(seconds(1), hours(1)), "10m"),
      Field("two_factor", &AccountConfig::two_factor,
            [](const YAML::Node& node, const std::string& path) {
              std::string mode = Scalar(node, path);
              for (TwoFactor each : {TwoFactor::kNone, TwoFactor::kPrompt, TwoFactor::kTotp}) {
                if (mode == TwoFactorName(each)) return each;
              }
              Fail(node, path + " must be none, prompt or totp");
            },
            "prompt"),
      Field<AccountConfig>(
          "totp_secret_file",
          [](const YAML::Node& node, const std::string& path, AccountConfig& into) {
            ReadTotpKey(node, Scalar(node, path), into);
          },
          "", OnReload::kRestart, &AccountConfig::totp_key),
      Alias(Field<AccountConfig>(
          "totp_secret_credential",
          [](const YAML::Node& node, const std::string& path, AccountConfig& into) {
            ReadTotpKey(node, CredentialFile(node, path, "totp_secret_file"), into);
          },
          "", OnReload::kRestart, &AccountConfig::totp_key)),
      Field("max_lifetime", &AccountConfig::max_lifetime, Lasting(seconds(2), hours(12)), "6h"),
      Field("renew_before", &AccountConfig::renew_before, Lasting(seconds(1), hours(11)), "1h"),
      Field("expire_on_shutdown", &AccountConfig::expire_on_shutdown, Boolean, "false"),
      Field("relogin_interval", &AccountConfig::relogin_interval, Lasting(seconds(1), hours(1)), "5m"),
      Field("max_connections", &AccountConfig::max_connections, Counted(1, 1024, "connections"), "2"),
  };
  return keys;
}

AccountConfig ParseAccount(const std::string& name, const YAML::Node& key, const YAML::Node& node, bool fleet) {
  if (!IsValidAccountName(name)) {
    Fail(key, "account name '" + name + "' must be 1-64 letters, digits, '_', '-' or '.'");
  }
  std::string where = "accounts." + name;
  if (node.IsMap() && node["password"]) {
    Fail(node["password"], "passwords are never written in the config: put it in a file readable "
                           "only by the daemon and name it with " + where + ".password_file");
  }
  for (auto [file, credential] : {std::pair{"password_file", "password_credential"},
                                  std::pair{"totp_secret_file", "totp_secret_credential"}}) {
    if (node.IsMap() && node[file] && node[credential]) {
      Fail(node[credential], where + ": give " + file + " or " + credential + ", not both");
    }
  }
  AccountConfig account;
  account.name = name;
  ReadSection(node, where, AccountKeys(), account);
  if (!node["username"]) Fail(node, where + ".username is required");
  // In a fleet an account may leave out its credentials: that machine only
  // follows the account, with the token another machine's broker obtains.
  if (account.password.empty() && !fleet) Fail(node, where + ".password_file (or password_credential) is required");
  if (account.two_factor == TwoFactor::kTotp && !account.password.empty() && account.totp_key.empty()) {
    Fail(node, where + ".totp_secret_file (or totp_secret_credential) is required");
  }
  if (account.renew_before >= account.max_lifetime) {
    Fail(node["renew_before"] ? node["renew_before"] : node,
         where + ".renew_before must be shorter than max_lifetime (" +
             std::to_string(account.max_lifetime.count() / 1000) + "s)");
  }
  // Default: yes without two-factor; no with it, so a restart does not cost a passcode.
  if (!node["expire_on_shutdown"]) account.expire_on_shutdown = account.two_factor == TwoFactor::kNone;
  return account;
}

PolicyRule ParseRule(const YAML::Node& node, const std::set<std::string>& account_names) {
  RequireMap(node, "each policy rule");
  RejectUnknownKeys(node, "policy rule",
                    {"uids", "users", "groups", "accounts", "methods", "admin", "token_export", "metrics", "share"});
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
  if (node["share"]) rule.share = static_cast<uint32_t>(Count(node["share"], "share", 1, 1000, "calls a turn"));
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

}  // namespace stormbroker::config
