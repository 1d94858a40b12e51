#include "config/yaml_reader.h"

#include <algorithm>
#include <cstdlib>

#include "config/byte_size.h"
#include "units/duration.h"

namespace stormbroker::config {
namespace {

thread_local std::vector<Warning>* warnings = nullptr;

}  // namespace

WarningScope::WarningScope(std::vector<Warning>* into) { warnings = into; }
WarningScope::~WarningScope() { warnings = nullptr; }

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

void Fail(const YAML::Node& node, std::string message) { throw ConfigError{LineOf(node), std::move(message)}; }

void Warn(const YAML::Node& node, std::string message) {
  if (warnings) warnings->push_back({LineOf(node), std::move(message)});
}

void RequireMap(const YAML::Node& node, const std::string& what) {
  if (!node.IsMap()) Fail(node, what + " must be a mapping of keys to values");
}

void RejectUnknownKeys(const YAML::Node& map, const std::string& where, const std::vector<std::string>& known) {
  for (const auto& entry : map) {
    std::string key = entry.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      Fail(entry.first, "unknown key '" + key + "' in " + where + " (known keys: " + list + ")");
    }
  }
}

std::string Scalar(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) Fail(node, what + " must be a single value");
  std::string value = node.as<std::string>();
  if (value.empty()) Fail(node, what + " must not be empty");
  return value;
}

std::string AbsolutePath(const YAML::Node& node, const std::string& what) {
  std::string path = Scalar(node, what);
  if (path.front() != '/') Fail(node, what + " must be an absolute path");
  return path;
}

std::chrono::milliseconds Duration(const YAML::Node& node, const std::string& what, std::chrono::milliseconds min,
                                   std::chrono::milliseconds max) {
  auto parsed = ParseDuration(Scalar(node, what));
  if (!parsed.ok()) Fail(node, what + ": " + parsed.status().message());
  if (*parsed < min || *parsed > max) {
    Fail(node, what + " must be between " + std::to_string(min.count() / 1000.0) + "s and " +
                   std::to_string(max.count() / 1000) + "s");
  }
  return *parsed;
}

bool Boolean(const YAML::Node& node, const std::string& what) {
  std::string value = Scalar(node, what);
  if (value != "true" && value != "false") Fail(node, what + " must be true or false");
  return value == "true";
}

unsigned long Count(const YAML::Node& node, const std::string& what, unsigned long low, unsigned long high,
                    const std::string& unit) {
  std::string text = Scalar(node, what);
  char* end = nullptr;
  unsigned long value = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || text[0] == '-' || value < low || value > high) {
    Fail(node, what + " must be a number of " + unit + " from " + std::to_string(low) + " to " + std::to_string(high));
  }
  return value;
}

size_t ByteSize(const YAML::Node& node, const std::string& what, size_t low, size_t high) {
  auto parsed = ParseByteSize(Scalar(node, what));
  if (!parsed.ok()) Fail(node, what + ": " + parsed.status().message());
  if (*parsed < low || *parsed > high) {
    Fail(node, what + " must be between " + std::to_string(low) + " and " + std::to_string(high) + " bytes");
  }
  return *parsed;
}

std::vector<std::string> StringList(const YAML::Node& node, const std::string& what) {
  if (!node.IsSequence()) Fail(node, what + " must be a list, e.g. [a, b]");
  std::vector<std::string> out;
  for (const auto& item : node) out.push_back(Scalar(item, "each entry of " + what));
  return out;
}

}  // namespace stormbroker::config
