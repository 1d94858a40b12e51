// Reading the config file's YAML into checked values. Every reader names
// what it reads (its path in the file, e.g. "limits.idle_timeout") and, on
// a bad value, throws ConfigError with the line of the node at fault, which
// LoadConfig turns into "FILE:LINE: what is wrong and what to do". Only
// code under config/ sees ConfigError: it never crosses LoadConfig.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace stormbroker::config {

struct ConfigError {
  int line;  // 1-based; 0 when the whole file is at fault
  std::string message;
};

// Warnings of the load under way, with their line (LoadConfig adds the file).
struct Warning {
  int line;
  std::string message;
};
// Collects the warnings of one load on this thread, for as long as it lives.
class WarningScope {
 public:
  explicit WarningScope(std::vector<Warning>* into);
  ~WarningScope();
};

int LineOf(const YAML::Node& node);
[[noreturn]] void Fail(const YAML::Node& node, std::string message);
void Warn(const YAML::Node& node, std::string message);

void RequireMap(const YAML::Node& node, const std::string& what);
// Rejects keys the daemon does not know: a typo must not silently fall back
// to a default. The message lists the known ones.
void RejectUnknownKeys(const YAML::Node& map, const std::string& where, const std::vector<std::string>& known);

// One non-empty value.
std::string Scalar(const YAML::Node& node, const std::string& what);
std::string AbsolutePath(const YAML::Node& node, const std::string& what);
std::chrono::milliseconds Duration(const YAML::Node& node, const std::string& what, std::chrono::milliseconds min,
                                   std::chrono::milliseconds max);
bool Boolean(const YAML::Node& node, const std::string& what);
// A whole number from `low` to `high`; `unit` says what it counts.
unsigned long Count(const YAML::Node& node, const std::string& what, unsigned long low, unsigned long high,
                    const std::string& unit);
size_t ByteSize(const YAML::Node& node, const std::string& what, size_t low, size_t high);
std::vector<std::string> StringList(const YAML::Node& node, const std::string& what);

}  // namespace stormbroker::config
