// The `cache:` rules: which identical calls share one answer, and for how long.
#include <algorithm>
#include <cctype>


#include "config/sections.h"
#include "util/ascii.h"

namespace stormbroker::config {
namespace {

// Whether a method's last segment reads, as the API names its reads.
bool ReadsOnly(std::string last) {
  last = AsciiLower(last);
  for (const char* read : {"list", "details", "info", "ping", "version", "search", "available"}) {
    if (last == read) return true;
  }
  return last.rfind("get", 0) == 0 && last.find('*') == std::string::npos;
}

}  // namespace

CacheRule ParseCacheRule(const YAML::Node& node, const std::set<std::string>& account_names) {
  RequireMap(node, "each cache rule");
  RejectUnknownKeys(node, "cache rule", {"methods", "accounts", "ttl"});
  CacheRule rule;
  rule.line = LineOf(node);
  if (!node["methods"]) Fail(node, "a cache rule must list methods: (patterns, as in policy)");
  rule.methods = StringList(node["methods"], "methods");
  if (!node["ttl"]) Fail(node, "a cache rule must say ttl: (how long an answer is reused; 0s shares calls in flight only)");
  rule.ttl = Duration(node["ttl"], "ttl", std::chrono::milliseconds(0), std::chrono::hours(1));
  if (node["accounts"]) {
    rule.accounts = StringList(node["accounts"], "accounts");
    for (size_t i = 0; i < rule.accounts.size(); ++i) {
      const std::string& name = rule.accounts[i];
      if (name != "*" && !account_names.count(name)) {
        Fail(node["accounts"][i], "cache rule names account '" + name + "', which is not under accounts:");
      }
    }
  }
  for (size_t i = 0; i < rule.methods.size(); ++i) {
    const std::string& pattern = rule.methods[i];
    std::string last = pattern.substr(pattern.rfind('/') == std::string::npos ? 0 : pattern.rfind('/') + 1);
    if (!ReadsOnly(last)) {
      Warn(node["methods"][i], "cache rule covers '" + pattern +
                                   "', which may write (a method whose name does not read, such as list, details "
                                   "or get*): callers would get stored answers from before their own writes");
    }
  }
  return rule;
}

}  // namespace stormbroker::config
